import json
import zipfile

import pytest
import torch
from conftest import tiny_model

from vitcore import CheckpointError, load_checkpoint, load_pretrained, save_checkpoint
from vitcore.checkpoint import DEFAULT_CHECKPOINT


def test_round_trip_folder_and_zip(tmp_path):
    model = tiny_model(heads=[2, 0, 1], mlp_widths=[8, 16, 0])
    x = torch.randn(2, 3, 16, 16)
    for target in (tmp_path / "ck", tmp_path / "ck.zip"):
        save_checkpoint(model, target, {"classes": {"wnids": [f"w{i}" for i in range(5)], "names": list("abcde")}})
        back = load_checkpoint(target)
        assert torch.equal(back.model(x), model(x))
        assert back.names == list("abcde")


def test_shipped_checkpoint_loads():
    ckpt = load_checkpoint()
    assert ckpt.model.config.heads == [12] * 9 and len(ckpt.wnids) == 200
    assert sum(p.numel() for p in ckpt.model.parameters()) == pytest.approx(2.8e6, rel=0.05)
    assert (DEFAULT_CHECKPOINT / "README.md").exists()


def test_corrupt_checkpoint_and_shape_mismatch(tmp_path):
    model = tiny_model()
    save_checkpoint(model, tmp_path / "ok")
    (tmp_path / "ok" / "model.safetensors").write_bytes(b"\x80\x04 pickle? no thanks")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_pretrained(tmp_path / "ok")
    save_checkpoint(model, tmp_path / "shape")
    cfg = json.loads((tmp_path / "shape" / "config.json").read_text())
    cfg["model"]["heads"] = [3, 3, 3]
    (tmp_path / "shape" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatch between weights and config: blocks.1.attn.qkv.weight is"):
        load_pretrained(tmp_path / "shape")
    (tmp_path / "shape" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_pretrained(tmp_path / "shape")
    (tmp_path / "shape" / "config.json").write_text(json.dumps({"model": {"dim": 3}}))
    with pytest.raises(CheckpointError, match="missing"):
        load_pretrained(tmp_path / "shape")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pretrained(tmp_path / "absent")
    (tmp_path / "w.zip").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(CheckpointError):
        load_pretrained(tmp_path / "w.zip")
    with zipfile.ZipFile(tmp_path / "nocfg.zip", "w") as z:
        z.writestr("model.safetensors", b"")
    with pytest.raises(CheckpointError, match="lacks config.json"):
        load_pretrained(tmp_path / "nocfg.zip")
    # a state dict with an unexpected key
    from safetensors.torch import save_file

    save_checkpoint(model, tmp_path / "extra")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["intruder"] = torch.zeros(1)
    save_file(state, tmp_path / "extra" / "model.safetensors")
    with pytest.raises(CheckpointError, match="Unexpected key.*intruder"):
        load_pretrained(tmp_path / "extra")
