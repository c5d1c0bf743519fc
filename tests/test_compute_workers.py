"""The app's compute service: worker processes give the figures a session computes by itself, shared by key."""

import os

import pytest
import torch

from vitcore import load_checkpoint, load_split
from vitcore.compute import Scheduler
from vitcore.compute.figures import Source
from vitcore.compute.workers import WorkerDied, WorkerPool
from vitcore.playground import Playground

pytestmark = pytest.mark.slow
CLASSES = ["n01443537", "n01629819"]


@pytest.fixture(scope="module")
def shipped():
    ckpt = load_checkpoint(None)
    return ckpt, load_split(None, "val"), Source(None, ckpt.sha256, None, "bundled")


@pytest.fixture(scope="module")
def pool(shipped):
    pool = WorkerPool(2)
    pool.warm(shipped[2])
    yield pool
    pool.shutdown()


def test_figures_from_worker_processes_equal_a_sessions_own(shipped, pool):
    ckpt, eval_set, source = shipped
    mask = ckpt.model.components.ones()
    mask[[3, 40, 120, 200]] = 0
    scheduler = Scheduler(pool, slots=2)
    try:
        served = Playground(ckpt.model, eval_set, CLASSES, scheduler=scheduler, source=source, session="a").slow(mask)
    finally:
        scheduler.close()
    alone = Playground(ckpt.model, eval_set, CLASSES).slow(mask)  # every job in this process, over live objects
    for field in ("kept", "params", "macs", "sample_correct", "top1_all_correct", "top1_all_done"):
        assert getattr(served, field) == getattr(alone, field), field
    assert served.top1_chosen == pytest.approx(alone.top1_chosen) and served.kl_chosen == pytest.approx(
        alone.kl_chosen, abs=1e-5
    )
    assert served.top1_all == pytest.approx(alone.top1_all)
    with torch.inference_mode():  # an independent reference: the masked full model over every eval image
        from vitcore.data import normalize

        pred = ckpt.model(normalize(eval_set.images, ckpt.model.config), mask=mask).argmax(1)
    assert served.top1_all == pytest.approx(float((pred == eval_set.labels).float().mean()))


def test_a_second_session_with_the_same_keep_set_pays_nothing(shipped, pool):
    ckpt, eval_set, source = shipped
    mask = ckpt.model.components.ones()
    mask[[5, 77]] = 0
    scheduler = Scheduler(pool, slots=2)
    try:
        first = Playground(ckpt.model, eval_set, CLASSES, scheduler=scheduler, source=source, session="a").slow(mask)
        ran = scheduler.stats.ran
        second = Playground(ckpt.model, eval_set, CLASSES, scheduler=scheduler, source=source, session="b").slow(mask)
        assert scheduler.stats.ran == ran  # every job of the second session came from the cache
        assert second.top1_all == first.top1_all and second.speedup == first.speedup
    finally:
        scheduler.close()


def test_a_worker_that_dies_fails_its_job_in_one_line_and_is_replaced(pool):
    before = set(pool.pids())
    with pytest.raises(WorkerDied, match="ended while running _exit"):
        pool.submit(os._exit, 3).result(60)
    assert pool.submit(os.getpid).result(60) in set(pool.pids())
    assert set(pool.pids()) != before  # one of them is new
