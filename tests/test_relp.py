"""RelP: attribution patching through RelP's LRP rules, against patching and rules applied by forward hooks."""

import pytest
import torch
from hook_reference import hook_attribution_patching

from vitcore.circuits import counterfactual, discover
from vitcore.circuits.eap import eap_scores
from vitcore.lrp_rules import CP_LRP


@pytest.fixture
def setup(tiny_task):
    return tiny_task


@pytest.mark.parametrize("metric", ["ce", "logit-diff"])
def test_relp_equals_the_hook_reference_and_without_rules_eap(setup, metric):
    model, _, task = setup
    cf = counterfactual(model, task, "resample")
    relp = eap_scores(model, task, cf, metric, lrp=CP_LRP)
    torch.testing.assert_close(relp, hook_attribution_patching(model, task, metric, "cp-lrp"), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        eap_scores(model, task, cf, metric), hook_attribution_patching(model, task, metric, None), atol=1e-5, rtol=1e-4
    )
    assert not torch.allclose(
        relp, eap_scores(model, task, cf, metric, lrp=True), atol=1e-4
    )  # not AttnLRP's rules either
    assert not torch.allclose(relp, eap_scores(model, task, cf, metric), atol=1e-4)  # the rules change the scores


def test_edge_relp_sums_to_node_relp(setup):
    """As for EAP: a node's score is the sum of its outgoing edges' (the same rules on both paths)."""
    model, _, task = setup
    cf = counterfactual(model, task, "resample", embed=True)
    edges = eap_scores(model, task, cf, "ce", granularity="edge", lrp=CP_LRP)
    nodes = eap_scores(model, task, cf, "ce", lrp=CP_LRP)
    summed = torch.zeros(len(model.edges.nodes)).index_add_(0, model.edges.upstream_ids, edges)[1:]
    torch.testing.assert_close(summed, nodes, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(edges, eap_scores(model, task, cf, "ce", granularity="edge"), atol=1e-4)


def test_relp_through_discover_ranks_its_magnitudes_and_refuses_kl(setup):
    model, data, task = setup
    result = discover(model, data, data.wnids[:2], "relp", keep=0.5)
    cf = counterfactual(model, task, "resample")
    torch.testing.assert_close(
        result.score_tensor(), eap_scores(model, task, cf, "ce", lrp=CP_LRP).abs(), atol=1e-6, rtol=1e-4
    )
    assert len(result.kept) == round(0.5 * len(model.components))
    with pytest.raises(Exception, match="RelP on KL is degenerate"):
        discover(model, data, data.wnids[:2], "relp", metric="kl")
