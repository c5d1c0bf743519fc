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
    return model, task, cf


def edge_logits(model, x, mask, corrupt):
    return model(x, edges=EdgeStream(model.edges, mask, corrupt))


def test_edge_count_of_the_tiny_model_by_hand(model):
    # heads [3, 2, 3], chunks [2, 3, 1] (widths 16, 24, 8 in chunks of 8): upstream prefixes by hand
    # layer 0: attn 9 inputs x 1, mlp 1 x (1 + 3); layer 1: attn 6 x 6, mlp 1 x 8;
    # layer 2: attn 9 x 11, mlp 1 x 14; logits 1 x 15
    assert len(model.edges) == 9 * 1 + 4 + 6 * 6 + 8 + 9 * 11 + 14 + 15


def test_all_ones_is_the_clean_model(setup):
    model, task, cf = setup
    with torch.no_grad():
        out = edge_logits(model, task.inputs, model.edges.ones(), corrupt_outputs(model, cf))
    torch.testing.assert_close(out, model(task.inputs), atol=1e-5, rtol=1e-5)


def test_zero_on_a_nodes_outgoing_edges_is_its_node_mask(setup):
    model, task, cf = setup
    corrupt = corrupt_outputs(model, cf)
    for name in ["L0.H1", "L1.C2", "L0.C0", "L2.H2"]:
        c = model.components.id(name)
        node = model.components.ones()
        node[c] = 0
        edge = model.edges.ones()
        edge[model.edges.outgoing(name)] = 0
        with torch.no_grad():
            torch.testing.assert_close(
                edge_logits(model, task.inputs, edge, corrupt),
                model(task.inputs, mask=node, counterfactual=cf),
                atol=1e-5,
                rtol=1e-5,
            )
            # and the conversion helper gives the same mask
            assert torch.equal(model.edges.from_node_mask(node), edge)


@pytest.mark.parametrize(
    "edge",
    [
        "L0.H1->L1.H0.q",
        "L0.C1->L1.H1.k",
        "embed->L2.H2.v",
        "L1.H0->L1.mlp",
        "L2.C0->logits",
        "embed->L1.H0.k",
        "L0.H2->L2.mlp",
    ],
)
def test_one_patched_edge_equals_the_hook_reference(setup, edge):
    model, task, cf = setup
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
    model, task, cf = setup
    from vitcore.circuits.corruptions import corrupted_inputs

    edges = [
        "L0.H0->L2.H1.q",
        "L0.C0->L2.H1.q",
        "embed->L1.mlp",
        "L1.C1->logits",
    ]  # upstream nodes untouched by the others
    clean, corrupt = node_outputs(model, task.inputs), node_outputs(model, corrupted_inputs(model, task, "resample"))
    mask = model.edges.ones()
    mask[[model.edges.edge_id(e) for e in edges]] = 0
    with torch.no_grad():
        ours = edge_logits(model, task.inputs, mask, corrupt_outputs(model, cf))
    torch.testing.assert_close(ours, patch_edges(model, task.inputs, edges, clean, corrupt), atol=1e-5, rtol=1e-5)


def test_batched_candidate_masks_equal_one_at_a_time(setup):
    model, task, cf = setup
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
    names = model.edges.names
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
    # keep L0.H1 -> L2.H0.v and L2.H0 -> logits: both heads alive;
    # L1.C0 -> L2.mlp only: dead (the MLP of layer 2 feeds nothing kept)
    mask[[edges.edge_id("L0.H1->L2.H0.v"), edges.edge_id("L2.H0->logits"), edges.edge_id("L1.C0->L2.mlp")]] = 1
    alive = edges.alive_components(mask)
    assert sorted(model.components.names[i] for i in torch.nonzero(alive).flatten().tolist()) == ["L0.H1", "L2.H0"]
    mask[edges.edge_id("L2.C0->logits")] = 1  # now layer 2's MLP is read, so L1.C0 lives too
    alive = edges.alive_components(mask)
    assert sorted(model.components.names[i] for i in torch.nonzero(alive).flatten().tolist()) == [
        "L0.H1",
        "L1.C0",
        "L2.C0",
        "L2.H0",
    ]


@pytest.mark.parametrize("tau", [0.005, 0.05])
def test_edge_acdc_cached_equals_naive(setup, tau):
    from vitcore.circuits.acdc_edges import acdc_edges

    model, task, cf = setup
    fast = acdc_edges(model, task, cf, tau)
    naive = acdc_edges(model, task, cf, tau, naive=True)
    assert torch.equal(fast.kept_mask, naive.kept_mask)
    assert 0 < fast.kept_mask.sum() < len(model.edges)  # some removed, some kept: the comparison means something
    assert fast.forward_passes < naive.forward_passes
    # the final damage is that of the circuit: re-measured with an independent forward of the kept edges
    corrupt = corrupt_outputs(model, cf)
    from vitcore.circuits.metrics import kl_damage

    with torch.no_grad():
        kl = float(
            kl_damage(
                edge_logits(model, task.inputs, fast.kept_mask, corrupt), task.reference_logits, task.labels
            ).mean()
        )
    assert abs(kl - fast.final_damage) < 1e-5


@torch.no_grad()
def exact_edge_effects(model, task, metric="ce"):
    """Damage increase when each edge alone is patched, by forward hooks (not the edge stream)."""
    from vitcore.circuits.corruptions import corrupted_inputs
    from vitcore.circuits.metrics import damage_fn

    d = damage_fn(metric)
    clean, corrupt = node_outputs(model, task.inputs), node_outputs(model, corrupted_inputs(model, task, "resample"))
    base = d(model(task.inputs), task.reference_logits, task.labels).mean()
    return torch.tensor(
        [
            float(
                d(patch_edges(model, task.inputs, [e], clean, corrupt), task.reference_logits, task.labels).mean()
                - base
            )
            for e in model.edges.names
        ]
    )


def test_edge_eap_ranks_like_exact_edge_patching(setup):
    from test_reference_circuits import spearman

    from vitcore.circuits.eap import eap_scores

    model, task, cf = setup
    scores = eap_scores(model, task, cf, "ce", granularity="edge")
    exact = exact_edge_effects(model, task)
    live = exact.abs() > 1e-7  # edges into the CLS-only logits from the embedding's CLS row change nothing
    rho = spearman(scores[live], exact[live])
    print(f"spearman(edge EAP, exact edge patching) = {rho:.3f} over {int(live.sum())} edges")
    assert rho > 0.5  # far above chance: |rho| < 0.16 at p = 0.05 for ~180 edges


def test_edge_eap_sums_to_node_eap(setup):
    """dD/dm_u = sum over u's outgoing edges of dD/dm_uv at the clean run: node EAP is the sum of its edges'."""
    from vitcore.circuits.eap import eap_scores

    model, task, cf = setup
    edges = eap_scores(model, task, cf, "ce", granularity="edge")
    nodes = eap_scores(model, task, cf, "ce")
    summed = torch.zeros(len(model.edges.nodes)).index_add_(0, model.edges.upstream_ids, edges)[1:]
    torch.testing.assert_close(summed, nodes, atol=1e-5, rtol=1e-4)


def test_edge_eap_ig_with_one_step_is_edge_eap(setup):
    from vitcore.circuits.eap import eap_scores
    from vitcore.circuits.eap_ig import eap_ig_scores

    model, task, cf = setup
    torch.testing.assert_close(
        eap_ig_scores(model, task, cf, "ce", n_steps=1, granularity="edge"),
        eap_scores(model, task, cf, "ce", granularity="edge"),
        atol=1e-5,
        rtol=1e-4,
    )
    # more steps: completeness, the scores add up to the damage of patching every edge
    many = eap_ig_scores(model, task, cf, "kl", n_steps=16, granularity="edge")
    from vitcore.circuits.metrics import kl_damage

    with torch.no_grad():
        all_patched = float(
            kl_damage(
                edge_logits(model, task.inputs, torch.zeros(len(model.edges)), corrupt_outputs(model, cf)),
                task.reference_logits,
                task.labels,
            ).mean()
        )
    assert abs(float(many.sum()) - all_patched) < 0.1 * all_patched


def test_learned_edge_masks_reach_the_target_sparsity(setup):
    from vitcore.circuits.learned import learn_masks

    model, task, cf = setup
    out = learn_masks(model, task, cf, 0.8, steps=200, granularity="edge")
    assert out.kept_mask.shape == (len(model.edges),)
    assert int(out.kept_mask.sum()) == round(0.2 * len(model.edges))
    assert out.expected_sparsity > 0.6


@pytest.mark.slow
def test_cli_edge_circuit_round_trips_and_refuses_lrp(tmp_path, capsys):
    from vitcore import load_checkpoint
    from vitcore.circuits.result import CircuitResult
    from vitcore.cli import main

    out = tmp_path / "edges.json"
    assert (
        main(
            [
                "circuits",
                "--method",
                "eap",
                "--granularity",
                "edge",
                "--classes",
                "n01443537",
                "--images",
                "4",
                "--keep",
                "0.02",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    model = load_checkpoint().model
    assert f"/{len(model.edges)} edges" in printed and "components still reach the logits" in printed
    result = CircuitResult.load(out)
    assert result.granularity == "edge" and len(result.kept) == round(0.02 * len(model.edges))
    mask = result.keep_mask(model.edges)
    assert int(mask.sum()) == len(result.kept)
    with pytest.raises(Exception, match="node-level result|edge-level result"):
        result.keep_mask(model.components)
    assert main(["circuits", "--method", "lrp", "--granularity", "edge", "--classes", "n01443537"]) != 0
    assert "LRP scores nodes only" in capsys.readouterr().err


def test_result_schema_v2_reads_v1_and_refuses_bad_edge_files(setup):
    import json

    from vitcore.circuits import discover
    from vitcore.circuits.result import CircuitResult, ResultError

    model, task, cf = setup
    data = task.pool
    node = discover(model, data, data.wnids[:2], "eap")
    v1 = json.loads(node.to_json())
    v1["version"] = 1
    v1.pop("granularity")
    assert CircuitResult.from_json(json.dumps(v1)).granularity == "node"
    edge = json.loads(discover(model, data, data.wnids[:2], "eap", granularity="edge").to_json())
    assert edge["version"] == 2 and edge["granularity"] == "edge" and len(edge["scores"]) == len(model.edges)
    bad = dict(edge, component_names=["L0.H1->L0.H1.q"] + edge["component_names"][1:])  # an edge name that parses...
    with pytest.raises(ResultError, match="different edges"):
        CircuitResult.from_json(json.dumps(bad)).keep_mask(model.edges, 0.5)  # ...but is not this model's edge
    with pytest.raises(ResultError, match="not an edge name"):
        CircuitResult.from_json(json.dumps(dict(edge, component_names=["L0.H1"] + edge["component_names"][1:])))
    with pytest.raises(ResultError, match="granularity"):
        CircuitResult.from_json(json.dumps(dict(edge, granularity="pixel")))
