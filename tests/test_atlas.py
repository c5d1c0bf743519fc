"""The circuit atlas: Ray and the single-process path agree, failures are retried, runs resume."""

import os

import pytest
import torch
from conftest import tiny_imageset, tiny_model

from vitcore.atlas import AtlasSettings, cluster_order, load_atlas, run_atlas, similarity, solve, union_circuit, usage
from vitcore.atlas.analysis import write_table
from vitcore.atlas.run import AtlasError

CLASSES = ["n00000000", "n00000001", "n00000002"]


@pytest.fixture
def setup():
    return tiny_model(), tiny_imageset()


def test_local_run_resumes_and_skips_finished_work(setup, tmp_path):
    model, data = setup
    first = run_atlas(model, data, CLASSES, ["eap", "acdc"], tmp_path, backend="local", progress=False)
    assert (first.ran, first.skipped) == (6, 0)
    files = sorted(tmp_path.glob("results/*/*.json"))
    assert len(files) == 6
    stamps = {f: f.stat().st_mtime_ns for f in files}
    files[0].unlink()  # as if the run had stopped before this task
    again = run_atlas(model, data, CLASSES, ["eap", "acdc"], tmp_path, backend="local", progress=False)
    assert (again.ran, again.skipped) == (1, 5)
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files[1:])  # finished work untouched
    with pytest.raises(AtlasError, match="other settings"):
        run_atlas(
            model, data, CLASSES, ["eap"], tmp_path, AtlasSettings(corruption="zero"), backend="local", progress=False
        )


def test_a_failing_task_is_retried_in_process(setup, tmp_path):
    model, data = setup
    marker = tmp_path / "failed-once"

    def flaky(model, data, task, settings):
        if task.wnid == CLASSES[1] and not marker.exists():
            marker.touch()
            raise RuntimeError("simulated crash")
        return solve(model, data, task, settings)

    run = run_atlas(model, data, CLASSES, ["eap"], tmp_path / "a", backend="local", progress=False, solver=flaky)
    assert marker.exists() and run.ran == 3 and len(list((tmp_path / "a").glob("results/eap/*.json"))) == 3


@pytest.mark.slow
def test_ray_with_two_workers_equals_the_sequential_path_and_retries_a_killed_worker(setup, tmp_path):
    pytest.importorskip("ray")
    model, data = setup
    local = run_atlas(model, data, CLASSES, ["eap", "learned"], tmp_path / "local", backend="local", progress=False)
    marker = tmp_path / "killed-once"

    def killed_once(model, data, task, settings):
        if task.wnid == CLASSES[2] and task.method == "eap" and not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies mid-task, as on a lost machine
        return solve(model, data, task, settings)

    ray_run = run_atlas(
        model,
        data,
        CLASSES,
        ["eap", "learned"],
        tmp_path / "ray",
        backend="ray",
        workers=2,
        progress=False,
        solver=killed_once,
    )
    assert marker.exists(), "the worker was never killed: the retry was not exercised"
    assert ray_run.backend == "ray" and ray_run.ran == local.ran == 6
    a, b = load_atlas(write_table(tmp_path / "local")), load_atlas(write_table(tmp_path / "ray"))
    assert a.wnids == b.wnids and a.methods == b.methods
    torch.testing.assert_close(a.scores, b.scores)
    assert torch.equal(a.kept, b.kept)


def test_similarity_usage_and_union(setup, tmp_path):
    model, data = setup
    run_atlas(model, data, data.wnids, ["eap"], tmp_path, backend="local", progress=False)
    atlas = load_atlas(write_table(tmp_path))
    sim = similarity(atlas, "eap")
    assert torch.equal(sim, sim.T) and torch.equal(sim.diagonal(), torch.ones(len(data.wnids)))
    assert ((sim >= 0) & (sim <= 1)).all()
    # Jaccard by hand for one pair
    a, b = (set(torch.nonzero(atlas.kept[0, i]).flatten().tolist()) for i in (0, 1))
    assert sim[0, 1] == pytest.approx(len(a & b) / len(a | b))
    assert sorted(cluster_order(sim)) == list(range(len(data.wnids)))
    assert torch.equal(usage(atlas, "eap"), atlas.kept[0].sum(0))
    union = union_circuit(atlas, "eap", data.wnids[:2])
    assert set(torch.nonzero(union).flatten().tolist()) == a | b
