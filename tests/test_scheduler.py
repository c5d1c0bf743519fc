"""The server-wide scheduler: priority order, shared runs and results, stale requests dropped, exclusive timings."""

import threading
import time

import pytest

from vitcore.compute import Dropped, Scheduler


class Gate:
    """Tasks that record when they start and block until released: the order is observed, never timed."""

    def __init__(self):
        self.started: list[str] = []
        self.running: set[str] = set()
        self.overlaps: list[tuple[str, frozenset]] = []  # (task, the others running when it started)
        self._lock = threading.Lock()
        self._release: dict[str, threading.Event] = {}

    def task(self, name: str, value=None):
        def run():
            with self._lock:
                self.overlaps.append((name, frozenset(self.running)))
                self.started.append(name)
                self.running.add(name)
            self._event(name).wait(10)
            with self._lock:
                self.running.discard(name)
            return value if value is not None else name

        return run

    def _event(self, name: str) -> threading.Event:
        with self._lock:
            return self._release.setdefault(name, threading.Event())

    def release(self, name: str) -> None:
        self._event(name).set()

    def wait_started(self, n: int, timeout: float = 10) -> None:
        end = time.monotonic() + timeout
        while len(self.started) < n:
            assert time.monotonic() < end, f"only {self.started} started"
            time.sleep(0.005)


@pytest.fixture
def gate_and_scheduler():
    gate = Gate()
    scheduler = Scheduler(slots=1)
    yield gate, scheduler
    for name in list(gate._release) + [f"t{i}" for i in range(20)]:
        gate.release(name)
    scheduler.close()


def test_cheaper_tiers_of_every_session_run_before_anyones_slow_tier(gate_and_scheduler):
    gate, s = gate_and_scheduler
    s.submit("blocker", gate.task("blocker"), priority=0)
    gate.wait_started(1)  # the one slot is busy: what follows queues
    s.submit("a-exact", gate.task("a-exact"), priority=4, session="a", channel="prune")
    s.submit("b-exact", gate.task("b-exact"), priority=4, session="b", channel="prune")
    s.submit("a-fast", gate.task("a-fast"), priority=0, session="a", channel="prune")
    s.submit("b-fast", gate.task("b-fast"), priority=0, session="b", channel="prune")
    for name in ["blocker", "a-fast", "b-fast", "a-exact", "b-exact"]:
        gate.release(name)
    gate.wait_started(5)
    assert gate.started == [
        "blocker",
        "a-fast",
        "b-fast",
        "a-exact",
        "b-exact",
    ]  # queue order was exact, fast, exact, fast


def test_two_sessions_with_the_same_key_pay_once_and_later_requests_hit_the_cache(gate_and_scheduler):
    gate, s = gate_and_scheduler
    calls = []
    s.submit("blocker", gate.task("blocker"))
    gate.wait_started(1)  # both requests queue behind it
    fa = s.submit(("fig", "keep1"), lambda: calls.append(1) or 42, session="a")
    fb = s.submit(("fig", "keep1"), lambda: calls.append(2) or 43, session="b")
    gate.release("blocker")
    assert fa.result(10) == 42 and fb.result(10) == 42
    assert s.submit(("fig", "keep1"), lambda: calls.append(3) or 44).result(1) == 42
    assert calls == [1] and s.stats.joined == 1 and s.stats.cache_hits == 1


def test_a_newer_toggle_drops_the_sessions_queued_work_unless_another_session_waits_on_it(gate_and_scheduler):
    gate, s = gate_and_scheduler
    s.submit("blocker", gate.task("blocker"))
    gate.wait_started(1)
    old_a = s.submit("exact-k1", gate.task("exact-k1"), priority=4, session="a", channel="prune", tag="k1")
    shared = s.submit("exact-k2", gate.task("exact-k2"), priority=4, session="a", channel="prune", tag="k2")
    assert s.stats.dropped == 1  # a moved on to k2: its queued work for k1 is stale
    s.submit(
        "exact-k2", gate.task("exact-k2-copy"), priority=4, session="b", channel="prune", tag="k2"
    )  # b wants the same work
    s.submit("fast-k3", gate.task("fast-k3"), priority=0, session="a", channel="prune", tag="k3")  # a toggled again
    assert s.stats.dropped == 1  # k2 stays: b waits on it
    with pytest.raises(Dropped):
        old_a.result(1)
    for name in ["blocker", "fast-k3", "exact-k2"]:
        gate.release(name)
    assert shared.result(10) == "exact-k2"  # still computed: b waits on it
    assert "exact-k1" not in gate.started and "exact-k2-copy" not in gate.started


def test_an_exclusive_timing_runs_alone_and_nothing_starts_past_it():
    gate = Gate()
    s = Scheduler(slots=2)
    try:
        s.submit("w1", gate.task("w1"), priority=4)
        gate.wait_started(1)
        timing = s.submit("time", gate.task("time"), priority=1, exclusive=True)
        s.submit("w2", gate.task("w2"), priority=4)  # a free slot, but the timing waits at the head of the queue
        time.sleep(0.2)
        assert gate.started == ["w1"]
        gate.release("w1")
        gate.wait_started(2)
        time.sleep(0.1)
        assert gate.started == ["w1", "time"]  # w2 waits while the timing runs
        gate.release("time")
        assert timing.result(10) == "time"
        gate.release("w2")
        gate.wait_started(3)
        assert dict(gate.overlaps)["time"] == frozenset()
    finally:
        for n in ("w1", "time", "w2"):
            gate.release(n)
        s.close()


def test_a_failing_task_reaches_every_waiter_and_is_not_cached():
    s = Scheduler(slots=1)
    try:

        def boom():
            raise ValueError("bad keep-set")

        a, b = s.submit("k", boom, session="a"), s.submit("k", boom, session="b")
        for f in (a, b):
            with pytest.raises(ValueError, match="bad keep-set"):
                f.result(10)
        assert s.cached("k") is None
        assert s.submit("k", lambda: 7).result(10) == 7
    finally:
        s.close()


def test_the_result_cache_is_bounded():
    s = Scheduler(slots=1, cache_size=3)
    try:
        for i in range(5):
            s.submit(i, lambda i=i: i).result(10)
        assert [s.cached(i) for i in range(5)] == [None, None, 2, 3, 4]
    finally:
        s.close()


def test_a_running_jobs_progress_reports_reach_the_scheduler(gate_and_scheduler):
    from vitcore.compute.progress import Progress, report

    gate, s = gate_and_scheduler
    reported = threading.Event()

    def job():
        report(0.25, "a quarter")
        reported.set()
        gate.task("long")()
        return "done"

    assert s.progress("long") is None  # nothing runs under that key
    s.submit("blocker", gate.task("blocker"))
    gate.wait_started(1)
    future = s.submit("long", job, session="a", channel="circuit", tag="long")
    assert s.progress("long") is None  # queued behind the blocker
    gate.release("blocker")
    assert reported.wait(10)
    assert s.progress("long") == Progress(0.25, "a quarter")
    gate.release("long")
    assert future.result(10) == "done"
    assert s.progress("long") is None  # finished: no longer running


def test_withdrawing_drops_a_queued_request_only_when_no_other_session_waits(gate_and_scheduler):
    gate, s = gate_and_scheduler
    s.submit("blocker", gate.task("blocker"))
    gate.wait_started(1)
    mine = s.submit("run", gate.task("run"), session="a", channel="circuit", tag="run")
    s.submit("run", gate.task("run-copy"), session="b", channel="circuit", tag="run")  # b asks for the same run
    assert not s.withdraw("run", "a")  # b still waits on it
    assert s.withdraw("run", "b")  # now nobody does: dropped before it ran
    with pytest.raises(Dropped):
        mine.result(1)
    gate.release("blocker")
    time.sleep(0.2)
    assert gate.started == ["blocker"] and s.stats.dropped == 1


def test_a_result_not_kept_is_shared_while_running_and_computed_again_later(gate_and_scheduler):
    gate, s = gate_and_scheduler
    calls = []

    def job():
        calls.append(1)
        return gate.task("model")()

    first = s.submit("model", job, keep_result=False)
    second = s.submit("model", job, keep_result=False)  # joins the running request
    gate.release("model")
    assert first.result(10) == second.result(10) == "model" and len(calls) == 1
    assert s.submit("model", job, keep_result=False).result(10) == "model" and len(calls) == 2
