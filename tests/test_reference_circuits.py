"""Circuit methods on the shipped checkpoint and the bundled discovery subset."""

import pytest
import torch

from vitcore import load_checkpoint, load_split
from vitcore.circuits import build_task, counterfactual, discover, eap_scores
from vitcore.circuits.corruptions import corrupted_inputs
from vitcore.circuits.metrics import damage_fn

CLASSES = ["n01443537", "n01629819", "n01641577"]  # goldfish, European fire salamander, bullfrog
pytestmark = pytest.mark.slow
N_IMAGES = 15  # 5 per class keeps CI fast; every method sees the same images


@pytest.fixture(scope="module")
def ref():
    ckpt = load_checkpoint()
    data = load_split(None, "train")
    task = build_task(ckpt.model, data, CLASSES, N_IMAGES)
    return ckpt.model, data, task, counterfactual(ckpt.model, task, "resample")


def ranks(x):
    r = torch.empty_like(x)
    r[torch.argsort(x)] = torch.arange(len(x), dtype=x.dtype)
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


@torch.no_grad()
def exact_effects(model, task, metric):
    """Damage increase when each component alone is patched, by forward hooks (not the model's mask path)."""
    from hook_reference import patched_logits, record

    d = damage_fn(metric)
    corrupt = record(model, corrupted_inputs(model, task, "resample"))
    base = d(model(task.inputs), task.reference_logits, task.labels).mean()
    return torch.tensor(
        [
            float(
                d(patched_logits(model, task.inputs, [name], corrupt), task.reference_logits, task.labels).mean() - base
            )
            for name in model.components.names
        ]
    )


def test_eap_ranking_correlates_with_exact_patching(ref):
    model, data, task, cf = ref
    signed = eap_scores(model, task, cf, "ce")  # the estimate itself; discover() ranks by its magnitude
    exact = exact_effects(model, task, "ce")
    rho = spearman(signed, exact)
    # Chance is rho ~ 0 (|rho| < 0.14 at p = 0.05 for 216 components). What the shipped checkpoint gives is
    # printed by `python -m pytest -s tests/test_reference_circuits.py` and recorded in docs/results/methods.md;
    # 0.5 leaves margin for BLAS differences while staying far above chance.
    print(f"spearman(EAP, exact patching) = {rho:.3f}")
    assert rho > 0.5


@pytest.mark.parametrize(
    "method,kw", [("eap", {}), ("eap-ig", {}), ("acdc", {"tau": 0.01}), ("learned", {"steps": 100}), ("lrp", {})]
)
def test_low_scores_hurt_kl_less_than_high_scores(ref, method, kw):
    model, data, task, cf = ref
    res = discover(model, data, CLASSES, method, "resample", n_images=N_IMAGES, **kw)
    scores = res.score_tensor()
    q = len(scores) // 4
    order = torch.argsort(scores)
    d = damage_fn("kl")

    def kl_without(ids):
        m = model.components.ones()
        m[ids] = 0
        with torch.no_grad():
            return float(d(model(task.inputs, mask=m, counterfactual=cf), task.reference_logits, task.labels).mean())

    low, high = kl_without(order[:q]), kl_without(order[-q:])
    print(f"{method}: KL without lowest 25% = {low:.4f}, without highest 25% = {high:.4f}")
    assert low < high


def test_lrp_ranking_correlates_with_exact_patching_of_the_logit(ref):
    """LRP decomposes the true-class logit rather than estimating patching effects, so its ranking is
    compared with exact patching of that logit by magnitude. The agreement depends on the model, not
    monotonically on its accuracy: rho = 0.653 on the 4-epoch model (EAP on the same metric: 0.926), 0.339
    on the 30-epoch one, 0.330 on the four-stage one, 0.388 on stage 5, 0.20-0.24 on stage 6's epochs and
    0.232 on the shipped average of them. The bound is significance: |rho| > 0.175 has p < 0.01 for 216
    components under no correlation (0.14 for p < 0.05)."""
    from vitcore.circuits.lrp import lrp_relevance

    model, data, task, cf = ref
    exact = exact_effects(model, task, "logit")
    relevance = lrp_relevance(model, task.inputs, task.labels).components.abs().mean(0)
    rho = spearman(relevance, exact.abs())
    print(f"spearman(LRP mean |relevance|, |exact patching of the logit|) = {rho:.3f}")
    assert rho > 0.175
