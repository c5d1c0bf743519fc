import json
import os
import subprocess
import sys

import torch

from conftest import ROOT
from vitcore import load_checkpoint
from vitcore.config import ViTConfig
from vitcore.train import TrainConfig, lr_factor, train

TINY = dict(depth=1, num_heads=2, mlp_width=32, dim=32, head_dim=16, patch_size=16)


def test_lr_schedule_warms_up_then_decays():
    f = [lr_factor(s, 100, 10, 1e-3, 1e-5) for s in range(100)]
    assert f[0] == 0.1 and f[9] == 1.0 and f[-1] < 0.02 and all(a >= b for a, b in zip(f[10:], f[11:]))


def test_train_saves_and_resumes(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=32, steps_per_epoch=3, warmup_epochs=0.5, workers=0)
    first = train(tmp_path, ViTConfig.uniform(**TINY), cfg, progress=False)
    assert first["epoch"] == 1 and 0 <= first["val_top1"] <= 1
    before = load_checkpoint(tmp_path).model.state_dict()
    cfg.epochs = 2
    second = train(tmp_path, ViTConfig.uniform(**TINY), cfg, progress=False)
    log = json.loads((tmp_path / "train_log.json").read_text())
    assert [e["epoch"] for e in log] == [1, 2] and second["epoch"] == 2
    after = load_checkpoint(tmp_path)
    assert after.info["training"]["epochs_done"] == 2 and len(after.wnids) == 200
    assert any(not torch.equal(before[k], v) for k, v in after.model.state_dict().items())


def test_ddp_two_processes_gloo(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "vitcore", "train",
           "--out", str(tmp_path), "--depth", "1", "--dim", "32", "--heads", "2", "--head-dim", "16", "--mlp", "32", "--patch", "16",
           "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "16", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.info["training"]["world_size"] == 2
