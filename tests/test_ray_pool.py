"""The compute service on Ray: the same jobs give the same results as in this process, errors and Stop carry over."""

import time

import pytest

from vitcore import load_checkpoint, load_split
from vitcore.compute import Scheduler
from vitcore.compute.figures import Source
from vitcore.compute.workers import WorkerDied
from vitcore.errors import VitcoreError
from vitcore.playground import Playground

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_pool():
    from vitcore.compute.ray_pool import RayPool

    pool = RayPool(processes=2)
    yield pool
    pool.shutdown()


def test_figures_on_ray_equal_a_sessions_own(ray_pool):
    ckpt = load_checkpoint(None)
    eval_set = load_split(None, "val")
    source = Source(None, ckpt.sha256, None, "bundled")
    mask = ckpt.model.components.ones()
    mask[[4, 90, 150]] = 0
    scheduler = Scheduler(ray_pool, slots=ray_pool.processes)
    try:
        served = Playground(ckpt.model, eval_set, ["n01443537"], scheduler=scheduler, source=source, session="a")
        on_ray = served.estimate(mask)
    finally:
        scheduler.close()
    alone = Playground(ckpt.model, eval_set, ["n01443537"]).estimate(mask)  # every job here, over live objects
    for field in ("kept", "params", "macs", "sample_correct"):
        assert getattr(on_ray, field) == getattr(alone, field), field
    assert on_ray.top1_chosen == pytest.approx(alone.top1_chosen)


def test_a_jobs_own_error_comes_back_and_an_abort_ends_the_task(ray_pool):
    from vitcore.compute.workers import run_job

    source = Source(None, "not-the-shipped-sha", None, "bundled")
    with pytest.raises(VitcoreError, match="changed since the app loaded it"):
        ray_pool.submit(run_job, "fast", source, b"\x01", ()).result(120)
    future = ray_pool.submit(time.sleep, 120)
    time.sleep(2)  # let the task start
    t0 = time.monotonic()
    assert ray_pool.abort(future)
    with pytest.raises(WorkerDied):
        future.result(60)
    assert time.monotonic() - t0 < 60


def test_a_task_that_kills_its_ray_worker_every_time_fails_in_one_line_after_its_retries(ray_pool):
    import os

    t0 = time.monotonic()
    with pytest.raises(WorkerDied, match=r"^this computation \(_exit\) stopped its worker three times"):
        ray_pool.submit(os._exit, 3).result(120)
    assert time.monotonic() - t0 < 120
    assert ray_pool.submit(os.getpid).result(120) > 0  # the cluster goes on
