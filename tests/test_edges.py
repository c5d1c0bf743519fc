"""The edge stream (vitcore.edges) against hook-based edge patching and the node-level path."""

import pytest
import torch

from conftest import tiny_imageset, tiny_model
from edge_reference import node_outputs, patch_edges
from vitcore.circuits.corruptions import corrupt_outputs, counterfactual
from vitcore.circuits.task import build_task
from vitcore.edges import EdgeError, EdgeStream


@pytest.fixture
def setup():
    model = tiny_model()
    data = tiny_imageset()
    task = build_task(model, data, data.wnids[:2])
    cf = counterfactual(model, task, "resample", embed=True)
    corrupt_x = torch.randn_like(task.inputs)  # only used where a test builds its own corrupt run
    return model, task, cf, corrupt_x


def edge_logits(model, x, mask, corrupt):
    return model(x, edges=EdgeStream(model.edges, mask, corrupt))


def test_edge_count_of_the_tiny_model_by_hand(model):
    # heads [3, 2, 3], chunks [2, 3, 1] (widths 16, 24, 8 in chunks of 8): upstream prefixes by hand
    # layer 0: attn 9 inputs x 1, mlp 1 x (1 + 3); layer 1: attn 6 x 6, mlp 1 x 8; layer 2: attn 9 x 11, mlp 1 x 14; logits 1 x 15
    assert len(model.edges) == 9 * 1 + 4 + 6 * 6 + 8 + 9 * 11 + 14 + 15


def test_all_ones_is_the_clean_model(setup):
    model, task, cf, _ = setup
    with torch.no_grad():
        out = edge_logits(model, task.inputs, model.edges.ones(), corrupt_outputs(model, cf))
    torch.testing.assert_close(out, model(task.inputs), atol=1e-5, rtol=1e-5)


def test_zero_on_a_nodes_outgoing_edges_is_its_node_mask(setup):
    model, task, cf, _ = setup
    corrupt = corrupt_outputs(model, cf)
    for name in ["L0.H1", "L1.C2", "L0.C0", "L2.H2"]:
        c = model.components.id(name)
        node = model.components.ones()
        node[c] = 0
        edge = model.edges.ones()
        edge[model.edges.outgoing(name)] = 0
        with torch.no_grad():
            torch.testing.assert_close(edge_logits(model, task.inputs, edge, corrupt), model(task.inputs, mask=node, counterfactual=cf), atol=1e-5, rtol=1e-5)
            # and the conversion helper gives the same mask
            assert torch.equal(model.edges.from_node_mask(node), edge)


@pytest.mark.parametrize("edge", ["L0.H1->L1.H0.q", "L0.C1->L1.H1.k", "embed->L2.H2.v", "L1.H0->L1.mlp", "L2.C0->logits", "embed->L1.H0.k", "L0.H2->L2.mlp"])
def test_one_patched_edge_equals_the_hook_reference(setup, edge):
    model, task, cf, _ = setup
    # (embed->logits is absent on purpose: the logits read the CLS token, whose embedding is the same for every image)
    from vitcore.circuits.corruptions import corrupted_inputs

    x_corrupt = corrupted_inputs(model, task, "resample")
    clean, corrupt = node_outputs(model, task.inputs), node_outputs(model, x_corrupt)
    mask = model.edges.ones()
    mask[model.edges.edge_id(edge)] = 0
    with torch.no_grad():
        ours = edge_logits(model, task.inputs, mask, corrupt_outputs(model, cf))
    ref = patch_edges(model, task.inputs, [edge], clean, corrupt)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert (ours - model(task.inputs)).abs().max() > 1e-3  # the edge matters: the test could fail


def test_several_edges_into_different_inputs_equal_the_hook_reference(setup):
    model, task, cf, _ = setup
    from vitcore.circuits.corruptions import corrupted_inputs

    edges = ["L0.H0->L2.H1.q", "L0.C0->L2.H1.q", "embed->L1.mlp", "L1.C1->logits"]  # upstream nodes untouched by the others
    clean, corrupt = node_outputs(model, task.inputs), node_outputs(model, corrupted_inputs(model, task, "resample"))
    mask = model.edges.ones()
    mask[[model.edges.edge_id(e) for e in edges]] = 0
    with torch.no_grad():
        ours = edge_logits(model, task.inputs, mask, corrupt_outputs(model, cf))
    torch.testing.assert_close(ours, patch_edges(model, task.inputs, edges, clean, corrupt), atol=1e-5, rtol=1e-5)


def test_batched_candidate_masks_equal_one_at_a_time(setup):
    model, task, cf, _ = setup
    corrupt = corrupt_outputs(model, cf)
    gen = torch.Generator().manual_seed(0)
    masks = (torch.rand(3, len(model.edges), generator=gen) > 0.3).float()
    N = len(task)
    with torch.no_grad():
        batched = model(task.inputs.repeat(3, 1, 1, 1), edges=EdgeStream(model.edges, masks, corrupt))
        single = torch.cat([edge_logits(model, task.inputs, m, corrupt) for m in masks])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
    assert batched.shape[0] == 3 * N


def test_edge_names_round_trip_and_bad_names(model):
    names = model.edges.names()
    assert len(names) == len(model.edges) == len(set(names))
    for i in [0, 17, len(names) - 1]:
        assert model.edges.edge_id(names[i]) == i
    with pytest.raises(EdgeError, match="writes after"):
        model.edges.edge_id("L2.H0->L1.mlp")
    with pytest.raises(EdgeError, match="not an edge"):
        model.edges.edge_id("L9.H0->logits")


def test_alive_components_by_hand(model):
    edges = model.edges
    mask = torch.zeros(len(edges))
    # keep L0.H1 -> L2.H0.v and L2.H0 -> logits: both heads alive; L1.C0 -> L2.mlp only: dead (the MLP of layer 2 feeds nothing kept)
    mask[[edges.edge_id("L0.H1->L2.H0.v"), edges.edge_id("L2.H0->logits"), edges.edge_id("L1.C0->L2.mlp")]] = 1
    alive = edges.alive_components(mask)
    assert sorted(model.components.names[i] for i in torch.nonzero(alive).flatten().tolist()) == ["L0.H1", "L2.H0"]
    mask[edges.edge_id("L2.C0->logits")] = 1  # now layer 2's MLP is read, so L1.C0 lives too
    alive = edges.alive_components(mask)
    assert sorted(model.components.names[i] for i in torch.nonzero(alive).flatten().tolist()) == ["L0.H1", "L1.C0", "L2.C0", "L2.H0"]
