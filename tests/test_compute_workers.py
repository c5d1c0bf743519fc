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


def kill_its_worker(pool: WorkerPool, future, reported: bool = False) -> int:
    """SIGKILL the worker process that runs ``future`` (after its first progress report when ``reported``), as the
    kernel's OOM killer would; returns the killed pid."""
    import signal
    import time

    deadline = time.monotonic() + 120
    while True:
        worker = next((w for w in pool._workers if w.current is future), None)
        if worker is not None and (not reported or getattr(future, "progress", None) is not None):
            pid = worker.process.pid
            os.kill(pid, signal.SIGKILL)
            return pid
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.01)


def test_a_job_that_kills_its_worker_every_time_fails_in_one_line_after_its_retries(pool):
    before, restarts = set(pool.pids()), pool.restarts
    with pytest.raises(WorkerDied, match=r"^this computation \(_exit\) stopped its worker three times .*fewer images"):
        pool.submit(os._exit, 3).result(120)
    assert pool.retries == 2 and pool.restarts == restarts + 2  # ran three times: retried twice, then given up
    assert pool.submit(os.getpid).result(60) in set(pool.pids())
    assert set(pool.pids()) != before  # replaced


def test_a_figure_job_whose_worker_is_killed_runs_again_and_equals_an_undisturbed_run(shipped, pool):
    from vitcore.compute.figures import keep_bytes
    from vitcore.compute.workers import run_job

    ckpt, _, source = shipped
    mask = ckpt.model.components.ones()
    mask[[7, 60, 130]] = 0
    args = ("sample", source, keep_bytes(mask))
    undisturbed = pool.submit(run_job, *args).result(300)
    restarts = pool.restarts
    future = pool.submit(run_job, *args)
    killed = kill_its_worker(pool, future)
    assert future.result(300) == undisturbed
    assert pool.restarts == restarts + 1 and killed not in pool.pids()


def test_a_circuit_run_in_a_worker_equals_one_here_reports_progress_and_is_shared(shipped, pool):
    from vitcore.circuits import discover
    from vitcore.compute.long_jobs import discovery_key, options_key
    from vitcore.compute.progress import Progress
    from vitcore.compute.workers import run_job

    ckpt, _, source = shipped
    options = {"n_images": 4, "granularity": "node"}
    scheduler = Scheduler(pool, slots=2)
    try:
        key = discovery_key(source, ("n01443537",), "eap-ig", **options)
        args = ("discover", source, ("n01443537",), "eap-ig", options_key(options))
        first = scheduler.submit(key, run_job, *args, session="a", channel="circuit", tag=key)
        second = scheduler.submit(key, run_job, *args, session="b", channel="circuit", tag=key)
        served = first.result(300)
        assert second.result(300) is served and scheduler.stats.ran == 1  # two sessions, one run
    finally:
        scheduler.close()
    here = discover(ckpt.model, load_split(None, "train"), ["n01443537"], "eap-ig", model_sha256=ckpt.sha256, **options)
    assert served.scores == pytest.approx(here.scores, abs=1e-5) and served.kept == here.kept
    # the pool's own future keeps the job's last report
    future = pool.submit(run_job, *args)
    future.result(300)
    assert isinstance(future.progress, Progress) and 0 < future.progress.fraction <= 1
    # killed after its first report, the run starts again on a fresh worker and gives the same circuit
    restarts = pool.restarts
    future = pool.submit(run_job, *args)
    kill_its_worker(pool, future, reported=True)
    retried = future.result(300)
    assert pool.restarts == restarts + 1
    assert retried.scores == pytest.approx(here.scores, abs=1e-5) and retried.kept == here.kept


def test_a_fine_tune_in_a_worker_equals_one_here(shipped, pool):
    from vitcore.compute.figures import keep_bytes
    from vitcore.compute.long_jobs import options_key
    from vitcore.compute.workers import run_job
    from vitcore.pruning import prune
    from vitcore.pruning.finetune import finetune_steps

    ckpt, _, source = shipped
    mask = ckpt.model.components.ones()
    mask[[2, 50]] = 0
    options = options_key({"steps": 3, "lr": 1e-4, "distill": True, "focus": True})
    job = pool.submit(run_job, "finetune", source, keep_bytes(mask), None, ("n01443537",), options)
    restarts = pool.restarts
    kill_its_worker(pool, job, reported=True)  # mid-run: the fine-tune starts again on a fresh worker
    model, losses = job.result(300)
    assert pool.restarts == restarts + 1
    here = prune(ckpt.model, mask)
    discovery = load_split(None, "train")
    focus = torch.nonzero(discovery.chosen(["n01443537"])).flatten()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a worker runs it: the same sums in the same order
    try:
        expected = finetune_steps(here, discovery, 3, lr=1e-4, teacher=ckpt.model, focus=focus)
    finally:
        torch.set_num_threads(threads)
    assert losses == pytest.approx(expected, rel=1e-4)
    for name, value in here.state_dict().items():
        assert torch.allclose(model.state_dict()[name], value, atol=1e-5), name


def test_an_aborted_job_stops_its_worker_at_once_and_the_pool_stays_whole(pool):
    import time

    future = pool.submit(time.sleep, 60)
    deadline = time.monotonic() + 30
    while not any(w.current is future for w in pool._workers):  # wait until a worker runs it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t0 = time.monotonic()
    assert pool.abort(future)
    with pytest.raises(WorkerDied, match="aborted"):
        future.result(30)
    assert time.monotonic() - t0 < 10
    assert pool.submit(os.getpid).result(60) in set(pool.pids())
    assert not pool.abort(future)  # already over


def test_withdrawing_a_running_request_that_nobody_else_wants_stops_its_worker(pool):
    import time

    scheduler = Scheduler(pool, slots=2)
    try:
        future = scheduler.submit("nap", time.sleep, 60, session="a", channel="circuit", tag="nap")
        deadline = time.monotonic() + 30
        while not any(w.current is not None for w in pool._workers):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        t0 = time.monotonic()
        assert scheduler.withdraw("nap", "a")
        with pytest.raises(WorkerDied, match="aborted"):
            future.result(30)
        assert time.monotonic() - t0 < 10
    finally:
        scheduler.close()


def test_a_worker_exits_quietly_when_the_server_stops_mid_job():
    """Ctrl-C reaches the worker too (one process group), then nobody reads its answer: no traceback, exit 0."""
    import signal
    import subprocess
    import sys
    import time

    from vitcore.compute.workers import _receive, _send

    proc = subprocess.Popen(
        [sys.executable, "-m", "vitcore.compute.workers"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _send(proc.stdin, (os.getpid, ()))
    assert _receive(proc.stdout)[1:] == (True, proc.pid)  # the worker is up and serving
    _send(proc.stdin, (time.sleep, (2.0,)))
    time.sleep(0.5)  # the job is running
    proc.send_signal(signal.SIGINT)
    proc.stdout.close()  # the server is gone: its end of the answer pipe with it
    proc.stdin.close()
    assert proc.wait(60) == 0
    assert b"Traceback" not in proc.stderr.read()
