"""Sparse autoencoders on the residual stream: the loss against overcomplete's, encoding against a hand
computation, edits against forward hooks, files refused in one line, resumable training, quality figures
against an SAE that reconstructs exactly, and bounded memory while streaming activations."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vitcore.data import ImageSet, load_split, normalize
from vitcore.features.activations import forward_with_sae, residuals, token_chunks
from vitcore.features.quality import measure_quality
from vitcore.features.sae import FORMAT, SAEConfig, SAEError, TopKSAE, load_sae, topk_loss
from vitcore.features.train import FeatureTrainingError, SAETrainSettings, train_saes
from vitcore.model import VisionTransformer


def overcomplete_losses(monkeypatch):
    """overcomplete's ``sae.losses`` module, imported without its package ``__init__`` (which loads OpenCV and
    scikit-learn for its plots and baselines; the losses need only torch and scipy)."""
    spec = importlib.util.find_spec("overcomplete")
    if spec is None or spec.origin is None:
        pytest.fail("overcomplete is not installed: run the README's test command")
    root = Path(spec.origin).parent
    for name, path in (("overcomplete", root), ("overcomplete.sae", root / "sae")):
        stub = types.ModuleType(name)
        stub.__path__ = [str(path)]
        monkeypatch.setitem(sys.modules, name, stub)
    monkeypatch.delitem(sys.modules, "overcomplete.sae.losses", raising=False)
    monkeypatch.delitem(sys.modules, "overcomplete.metrics", raising=False)
    return importlib.import_module("overcomplete.sae.losses")


def small_sae(d: int = 12, n: int = 40, k: int = 5, layer: int = 1, scale: float = 1.7, seed: int = 0) -> TopKSAE:
    torch.manual_seed(seed)
    sae = TopKSAE(SAEConfig(layer, d, n, k, scale, "abc"))
    with torch.no_grad():
        sae.W_enc.normal_()
        sae.b_enc.normal_(0, 0.3)
        sae.b_dec.normal_(0, 0.3)
    return sae


def test_loss_matches_overcomplete_topk_auxiliary_loss(monkeypatch):
    losses = overcomplete_losses(monkeypatch)
    sae = small_sae()
    x = torch.randn(64, 12)
    n = sae.config.n_latents
    penalty = 0.1
    ours, z = topk_loss(sae, x, dead=torch.ones(n, dtype=torch.bool), k_aux=n // 2, aux_coef=penalty)
    xs = x * sae.config.scale
    pre = sae.pre_activations(x)
    theirs = losses.top_k_auxiliary_loss(xs, z @ sae.W_dec + sae.b_dec, pre, z, sae.W_dec, penalty=penalty)
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-5)
    weights = torch.rand(64) + 0.5  # a weighted mean of the tokens' squared errors, by hand
    weighted, _ = topk_loss(sae, x, weights=weights)
    errors = ((xs - (z @ sae.W_dec + sae.b_dec)) ** 2).mean(-1).detach()
    assert float(weighted.detach()) == pytest.approx(float((errors * weights).sum() / weights.sum()), rel=1e-5)
    plain, _ = topk_loss(sae, x)  # no dead latent: the reconstruction error alone
    assert float(plain.detach()) == pytest.approx(
        float(((xs - (z @ sae.W_dec + sae.b_dec)) ** 2).mean().detach()), rel=1e-6
    )


def test_aux_term_reads_only_dead_latents():
    sae = small_sae()
    x = torch.randn(32, 12)
    dead = torch.zeros(sae.config.n_latents, dtype=torch.bool)
    dead[[3, 7]] = True
    loss, z = topk_loss(sae, x, dead=dead, k_aux=6, aux_coef=1.0)
    xs = x * sae.config.scale
    residual = xs - (z @ sae.W_dec + sae.b_dec)
    cand = torch.relu(sae.pre_activations(x)) * (z == 0)
    aux = np.zeros((32, sae.config.n_latents), dtype=np.float32)
    for t in range(32):  # by hand: both dead latents (k_aux exceeds their number), wherever TopK left them
        for j in (3, 7):
            aux[t, j] = float(cand[t, j].detach())
    expected = residual.square().mean() + (residual - torch.from_numpy(aux) @ sae.W_dec).square().mean()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_encoding_keeps_the_k_largest_relu_pre_activations_by_hand():
    sae = small_sae()
    x = torch.randn(10, 12)
    z = sae.encode(x).detach().numpy()
    W, b, bd, s = (sae.W_enc.detach().numpy(), sae.b_enc.detach().numpy(), sae.b_dec.detach().numpy(), 1.7)
    for t in range(10):
        pre = np.maximum(W @ (x[t].numpy() * s - bd) + b, 0)
        top = np.argsort(-pre)[:5]
        want = np.zeros_like(pre)
        want[top] = pre[top]
        np.testing.assert_allclose(z[t], want, rtol=1e-5, atol=1e-6)
    recon = sae.decode(torch.from_numpy(z)).detach().numpy()
    by_rows = (z @ sae.W_dec.detach().numpy() + bd) / s
    np.testing.assert_allclose(recon, by_rows, rtol=1e-5, atol=1e-6)


def test_decoder_rows_stay_unit_norm_and_gradient_loses_its_radial_part():
    sae = small_sae()
    np.testing.assert_allclose(sae.W_dec.norm(dim=1).detach().numpy(), 1.0, rtol=1e-6)
    loss, _ = topk_loss(sae, torch.randn(16, 12))
    loss.backward()  # noqa
    before = (sae.W_dec.grad * sae.W_dec).sum(1).abs().max()
    sae.remove_parallel_gradient()
    radial = (sae.W_dec.grad * sae.W_dec).sum(1)
    assert float(radial.abs().max()) < 1e-4 * float(before)


@pytest.fixture(scope="module")
def tiny_model() -> VisionTransformer:
    from vitcore.config import ViTConfig

    torch.manual_seed(0)
    cfg = ViTConfig(
        image_size=16, patch_size=8, dim=12, head_dim=4, heads=[3, 3, 3], mlp_widths=[16, 16, 16], num_classes=5
    )
    return VisionTransformer(cfg).eval()


def test_edit_of_one_latent_matches_a_forward_pre_hook(tiny_model):
    """Without an edit the logits are the model's; zeroing latent j equals subtracting its write
    (``z_j * W_dec[j] / scale``) from the residual entering the layer with a forward pre-hook."""
    sae = small_sae(layer=1)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        base = tiny_model(x)
        np.testing.assert_allclose(forward_with_sae(tiny_model, x, sae, 1).numpy(), base.numpy(), atol=1e-5)
        resid = residuals(tiny_model, x, [1])[1]
        z = sae.encode(resid)
        j = int(z.reshape(-1, z.shape[-1]).sum(0).argmax())

        def hook(module, args):
            return (args[0] - z[..., j : j + 1] * sae.W_dec[j] / sae.config.scale,)

        handle = tiny_model.blocks[1].register_forward_pre_hook(hook)
        try:
            expected = tiny_model(x)
        finally:
            handle.remove()

        def zero_j(codes):
            codes = codes.clone()
            codes[..., j] = 0
            return codes

        edited = forward_with_sae(tiny_model, x, sae, 1, edit=zero_j)
    assert not torch.allclose(expected, base, atol=1e-4)  # the latent does something here
    np.testing.assert_allclose(edited.numpy(), expected.numpy(), atol=1e-5)


def exact_sae(dim: int, layer: int) -> TopKSAE:
    """An SAE whose reconstruction is exact: latents ``relu(x)`` and ``relu(-x)``, all kept."""
    sae = TopKSAE(SAEConfig(layer, dim, 2 * dim, 2 * dim, 1.0, ""))
    eye = torch.eye(dim)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye]))
        sae.W_dec.copy_(torch.cat([eye, -eye]))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_quality_of_an_exact_sae_and_of_a_planted_dead_latent():
    from vitcore.checkpoint import load_checkpoint

    ckpt = load_checkpoint()
    data = load_split(None, "val")
    data = data.subset(torch.arange(0, len(data), 20))  # 100 images
    model = ckpt.model
    sae = exact_sae(model.config.dim, 4)
    q = measure_quality(model, sae, data, batch_size=64)
    assert q.fve == pytest.approx(1.0, abs=1e-6) and q.fve_cls == pytest.approx(1.0, abs=1e-6)
    assert q.kl_spliced == pytest.approx(0.0, abs=1e-6) and q.top1_spliced == q.top1_model
    # the model's own accuracy on these images, by a plain forward
    with torch.no_grad():
        plain = (model(normalize(data.images, model.config)).argmax(-1) == data.labels).float().mean()
    assert q.top1_model == pytest.approx(float(plain))
    # L0 by hand: every non-zero coordinate of every token's residual is one active latent
    resid = residuals(model, normalize(data.images, model.config), [4])[4]
    assert q.mean_l0 == pytest.approx(float((resid != 0).sum(-1).float().mean()), rel=1e-6)
    flat = resid.reshape(-1, resid.shape[-1])
    never = torch.cat([(flat <= 0).all(0), (flat >= 0).all(0)])  # by hand: relu(x_i) or relu(-x_i) never positive
    assert q.dead_fraction == pytest.approx(float(never.float().mean()))
    live = int((~never).nonzero()[0])
    with torch.no_grad():
        sae.b_enc[live] = -1e6  # a latent that fired can no longer fire
    q = measure_quality(model, sae, data, batch_size=64)
    assert q.dead_fraction == pytest.approx(float(never.float().mean()) + 1 / sae.config.n_latents)
    assert q.fve < 1.0


def test_sae_file_round_trip_and_refusals(tmp_path):
    sae = small_sae()
    path = tmp_path / "L1.safetensors"
    sae.save(path)
    back = load_sae(path, model_dim=12, model_depth=3, model_sha256="abc")
    x = torch.randn(5, 12)
    assert torch.equal(back.encode(x), sae.encode(x))
    sae.save(tmp_path / "half.safetensors", dtype=torch.float16)
    half = load_sae(tmp_path / "half.safetensors")
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * path.stat().st_size
    assert half.W_dec.dtype == torch.float32
    torch.testing.assert_close(half.W_dec, sae.W_dec.detach().half().float())
    (tmp_path / "text.safetensors").write_text("hello")
    state = {k: v.detach() for k, v in sae.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps({**json.loads(json.dumps(sae.config.__dict__)), "n_latents": 41})}
    save_file(state, tmp_path / "shape.safetensors", metadata=meta)
    save_file(state, tmp_path / "other.safetensors", metadata={"format": "something-else"})
    bad = dict(state)
    bad["b_enc"] = bad["b_enc"].clone()
    bad["b_enc"][0] = float("nan")
    save_file(bad, tmp_path / "nan.safetensors", metadata={"format": FORMAT, "config": json.dumps(sae.config.__dict__)})
    cases = {
        tmp_path / "missing.safetensors": "no such SAE file",
        tmp_path / "text.safetensors": "not safetensors",
        tmp_path / "shape.safetensors": "do not fit its config",
        tmp_path / "other.safetensors": "not an SAE file of this app",
        tmp_path / "nan.safetensors": "non-finite",
    }
    for bad_path, words in cases.items():
        with pytest.raises(SAEError, match=words) as err:
            load_sae(bad_path, 12, 3, "abc")
        assert "\n" not in str(err.value)
    for kwargs, words in (
        ({"model_dim": 16}, "width 12; the model's is 16"),
        ({"model_depth": 1}, "reads layer 1; the model has 1 layers"),
        ({"model_sha256": "def"}, "trained on another model"),
    ):
        with pytest.raises(SAEError, match=words):
            load_sae(path, **kwargs)


def small_images(n: int, size: int = 16, classes: int = 5, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    wnids = [f"n{i:08d}" for i in range(classes)]
    return ImageSet(images, labels, wnids, wnids, [f"{i}.png" for i in range(n)])


def test_token_chunks_hold_every_token_once(tiny_model):
    data = small_images(10)
    order = torch.randperm(10)
    seen = []
    for chunk, tokens, positions in token_chunks(tiny_model, data, [1, 2], order, chunk_images=4):
        assert set(tokens) == {1, 2} and tokens[1].shape[0] <= 4 * 5
        seen.append(tokens[2])
        with torch.no_grad():  # each row's position: the class token's rows are the images' class tokens
            images = order[chunk * 4 : (chunk + 1) * 4]
            r = residuals(tiny_model, normalize(data.images[images], tiny_model.config), [2])[2]
        cls_rows = tokens[2][positions == 0]
        assert len(cls_rows) == len(images)
        key_rows = lambda t: sorted(map(tuple, t.round(decimals=4).tolist()))  # noqa: E731
        assert key_rows(cls_rows) == key_rows(r[:, 0])
    with torch.no_grad():
        every = residuals(tiny_model, normalize(data.images[order], tiny_model.config), [2])[2].reshape(-1, 12)
    got = torch.cat(seen)
    assert got.shape == every.shape
    key = lambda t: sorted(map(tuple, t.round(decimals=4).tolist()))  # noqa: E731
    assert key(got) == key(every)


def test_training_lowers_the_loss_and_resumes_to_the_same_sae(tiny_model, tmp_path):
    data = small_images(128)
    settings = SAETrainSettings(
        layers=(1, 2), expansion=2, k=4, epochs=3, chunk_images=32, batch_tokens=64, lr=1e-2, warmup_steps=2
    )
    whole = train_saes(tiny_model, data, settings, tmp_path / "whole", "abc", save_every_chunks=1)
    log = json.loads((tmp_path / "whole" / "train_log.json").read_text())
    first, last = log["chunks"][0]["L1"]["loss"], log["chunks"][-1]["L1"]["loss"]
    assert last < 0.8 * first, (first, last)
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] == 3

    train_saes(tiny_model, data, settings, tmp_path / "parts", "abc", should_stop=stop_after_three, save_every_chunks=5)
    assert not (tmp_path / "parts" / "L1.safetensors").exists()
    resumed = train_saes(tiny_model, data, settings, tmp_path / "parts", "abc", save_every_chunks=5)
    for layer in (1, 2):
        for name, value in whole[layer].state_dict().items():
            torch.testing.assert_close(resumed[layer].state_dict()[name], value, msg=f"L{layer} {name}")
    loaded = load_sae(tmp_path / "parts" / "L2.safetensors", 12, 3, "abc")
    assert loaded.config.layer == 2 and loaded.config.n_latents == 24
    other = SAETrainSettings(layers=(1, 2), expansion=2, k=3, epochs=3, chunk_images=32, batch_tokens=64)
    with pytest.raises(FeatureTrainingError, match="other settings"):
        train_saes(tiny_model, data, other, tmp_path / "whole", "abc")


def test_settings_are_checked(tiny_model, tmp_path):
    for settings, words in (
        (SAETrainSettings(layers=(3,)), "each must be in 0..2"),
        (SAETrainSettings(layers=(1, 1)), "twice"),
        (SAETrainSettings(layers=(1,), expansion=1, k=13), "more than the 12 latents"),
    ):
        with pytest.raises(FeatureTrainingError, match=words):
            train_saes(tiny_model, small_images(4), settings, tmp_path / "x")


STREAM_PEAK = """
import json, resource, sys
import torch
torch.set_num_threads(2)
from vitcore.config import ViTConfig
from vitcore.data import ImageSet
from vitcore.features.train import SAETrainSettings, train_saes
from vitcore.model import VisionTransformer
torch.manual_seed(0)
cfg = ViTConfig(image_size=64, patch_size=8, dim=192, head_dim=16, heads=[2] * 3, mlp_widths=[32] * 3, num_classes=5)
model = VisionTransformer(cfg).eval()
n = int(sys.argv[2])
images = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8)
data = ImageSet(images, torch.zeros(n, dtype=torch.long), ["a"] * 5, ["a"] * 5, [""] * n)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
settings = SAETrainSettings(layers=(1, 2), expansion=1, k=4, chunk_images=128, batch_tokens=4096)
train_saes(model, data, settings, sys.argv[1])
all_tokens = n * 65 * 192 * 4 * 2
print(json.dumps({"peak_rise": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before, "all": all_tokens}))
"""


@pytest.mark.slow
def test_streaming_training_memory_stays_far_below_holding_every_activation(tmp_path):
    """6,000 images' residuals at two layers would take 600 MB; the run's peak rises by under a fifth of it."""
    proc = subprocess.run(
        [sys.executable, "-c", STREAM_PEAK, str(tmp_path / "run"), "6000"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["all"] > 500 * 2**20
    assert row["peak_rise"] < row["all"] / 5, row


def test_latent_attribution_is_the_directional_derivative_and_exact_matches_hooks(tiny_model):
    """The estimate of latent j is the derivative of log p along minus its write (central finite difference
    through a forward pre-hook); its exact value is the hooked removal of its write at every token."""
    from vitcore.features.attribution import attribute_latents

    sae = small_sae(layer=1, seed=3)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 16, 16)
    labels = torch.tensor([1, 3])
    result = attribute_latents(tiny_model.double(), sae.double(), x.double(), labels, exact=5)
    tiny_model.float(), sae.float()
    assert result.exact is not None and result.images == 2
    xd = x.double()
    with torch.no_grad():
        z = sae.double().encode(residuals(tiny_model.double(), xd, [1])[1])

        def log_p_with(shift):
            handle = tiny_model.blocks[1].register_forward_pre_hook(lambda m, a: (a[0] + shift,))
            try:
                return tiny_model(xd).log_softmax(-1).gather(1, labels[:, None])[:, 0]
            finally:
                handle.remove()

        base = log_p_with(torch.zeros(()))
        for pos in range(5):
            j = int(result.latents[pos])
            write = z[..., j : j + 1] * sae.W_dec[j] / sae.config.scale
            eps = 1e-4
            derivative = (log_p_with(-eps * write) - log_p_with(eps * write)) / (2 * eps)
            assert float(result.estimate[pos]) == pytest.approx(float(derivative.mean()), rel=1e-4, abs=1e-8)
            assert float(result.exact[pos]) == pytest.approx(float((log_p_with(-write) - base).mean()), abs=1e-9)
    tiny_model.float(), sae.float()
    assert torch.isnan(result.exact[5:]).all()
    assert (result.estimate.abs()[:-1] >= result.estimate.abs()[1:]).all()


def test_feature_view_reads_top_images_labels_and_removal_by_hand(tiny_model):
    from vitcore.features.view import LABEL_IMAGES, build_index, feature_view, features_of_class

    sae = small_sae(layer=2, seed=5)
    data = small_images(60, seed=2)
    index = build_index(tiny_model, sae, data, batch_size=16)
    with torch.no_grad():
        z = sae.encode(residuals(tiny_model, normalize(data.images, tiny_model.config), [2])[2])  # [N, T, n]
    maxes = z.amax(1)
    j = int((maxes > 0).sum(0).argmax())  # a latent that fires on many images
    view = feature_view(tiny_model, sae, data, index, j, top_n=6)
    want = torch.argsort(maxes[:, j], descending=True)[:6].tolist()
    assert view.top == want
    torch.testing.assert_close(view.patch_maps, z[want][:, 1:, j].reshape(6, 2, 2))
    labelled = [int(data.labels[i]) for i in torch.argsort(maxes[:, j], descending=True)[:LABEL_IMAGES]]
    counts = {c: labelled.count(c) for c in set(labelled)}
    assert view.purity == pytest.approx(max(counts.values()) / len(labelled))
    assert counts[data.names.index(view.label)] == max(counts.values())
    assert view.frequency == pytest.approx(float((maxes[:, j] > 0).float().mean()))
    with torch.no_grad():  # removal on the top images, by a forward pre-hook subtracting the latent's write
        xs = normalize(data.images[want], tiny_model.config)
        write = z[want][..., j : j + 1] * sae.W_dec[j] / sae.config.scale
        handle = tiny_model.blocks[2].register_forward_pre_hook(lambda m, a: (a[0] - write,))
        try:
            removed = tiny_model(xs)
        finally:
            handle.remove()
        base = tiny_model(xs)
    labels = data.labels[want]
    change = (removed.softmax(-1) - base.softmax(-1)).gather(1, labels[:, None]).mean()
    assert view.removal_p_true == pytest.approx(float(change), abs=1e-6)
    assert view.removal_flipped == int((removed.argmax(-1) != base.argmax(-1)).sum())
    wnid = data.wnids[int(data.labels[0])]
    ranked = features_of_class(index, data, wnid, n=3)
    chosen = data.labels == int(data.labels[0])
    gaps = maxes[chosen].mean(0) - maxes[~chosen].mean(0)
    assert [j for j, _ in ranked] == torch.argsort(gaps, descending=True)[:3].tolist()


def test_suppressing_mark_features_matches_a_hooked_model_and_finds_the_mark(tiny_model):
    """Planted by hand: a latent whose encoder reads the mark's colour at its patch. ``mark_features`` puts it
    first; the figures with the found latents suppressed equal the flip rate of a model hooked by hand."""
    from vitcore.features.shortcut import edited_predict, mark_features
    from vitcore.features.steer import scale_latents
    from vitcore.shortcut.figures import shortcut_figures
    from vitcore.shortcut.mark import Mark, Shortcut, apply_mark

    data = small_images(40, seed=4)
    shortcut = Shortcut(data.wnids[0], Mark(size=6, colour=(255, 0, 255), corner="bottom-right", margin=1))
    sae = small_sae(layer=1, seed=6)
    x_clean = normalize(data.images, tiny_model.config)
    x_marked = normalize(apply_mark(data.images, shortcut.mark), tiny_model.config)
    with torch.no_grad():
        r_clean = residuals(tiny_model, x_clean, [1])[1]
        r_marked = residuals(tiny_model, x_marked, [1])[1]
        direction = (r_marked - r_clean)[:, -1].mean(0)  # the mark is in the last patch (bottom-right)
        sae.W_enc[7] = direction / direction.norm() * 3 / sae.config.scale
        sae.b_enc[7] = 0.0
    found = mark_features(tiny_model, sae, data.images, shortcut, n=3)
    assert found[0][0] == 7, found
    predict = edited_predict(tiny_model, sae, scale_latents([7], 0.0), batch_size=16)
    with torch.no_grad():

        def hooked(images):
            x = normalize(images, tiny_model.config)
            z = sae.encode(residuals(tiny_model, x, [1])[1])
            write = z[..., 7:8] * sae.W_dec[7] / sae.config.scale
            handle = tiny_model.blocks[1].register_forward_pre_hook(lambda m, a: (a[0] - write,))
            try:
                return tiny_model(x)
            finally:
                handle.remove()

        for images in (data.images, apply_mark(data.images, shortcut.mark)):
            torch.testing.assert_close(predict(images), hooked(images), atol=1e-5, rtol=1e-5)
    figures = shortcut_figures(tiny_model, data, shortcut.target, shortcut.mark, predict=predict)
    others = data.labels != 0
    by_hand = float((hooked(apply_mark(data.images[others], shortcut.mark)).argmax(-1) == 0).float().mean())
    assert figures["flip_rate"] == pytest.approx(by_hand)


def test_cli_refuses_bad_input_in_one_line(tmp_path, capsys):
    from vitcore.cli import main

    (tmp_path / "notes.safetensors").write_text("not an SAE")
    cases = [
        (["features", "quality", "--sae", str(tmp_path / "notes.safetensors")], "not an SAE file"),
        (["features", "train", "--layers", "4,x", "--out", str(tmp_path / "o")], "--layers '4,x'"),
        (["features", "train", "--layers", "12", "--out", str(tmp_path / "o")], "each must be in 0..8"),
        (["features", "train", "--mark-share", "0.1", "--out", str(tmp_path / "o")], "needs a model with a planted"),
        (["features", "shortcut", "--sae", str(tmp_path / "notes.safetensors")], "no planted shortcut"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and words in err and "\n" not in err, (argv, err)
