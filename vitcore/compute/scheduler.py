"""One scheduler for the whole server: every session's requests in one priority queue, run on a few slots.

A request names what determines its result (its ``key``) and a priority (lower runs first). Requests with
the same key share one run and one cached result, whichever sessions made them. A session tags its
requests in a channel (say, with the keep-set they serve); when it moves to a new tag, its queued requests
under older tags are dropped (they are stale: the user toggled again), unless another session still waits
on them. An *exclusive* request (a timing) runs with no other
request running, so that the server's own work does not disturb it; while one waits at the head of the
queue, nothing else starts.

Where requests run is the executor's business: a thread pool in one process (tests, the CLI) or a pool of
worker processes (the app), so that heavy work does not hold the interpreter the pages need.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import CancelledError, Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .progress import Progress, reporting_to


class Dropped(CancelledError):
    """The request was dropped before it ran: a newer request of the same session replaced it."""


@dataclass(order=True)
class _Queued:
    priority: int
    seq: int
    key: Hashable = field(compare=False)
    fn: Callable[..., Any] = field(compare=False)
    args: tuple = field(compare=False)
    exclusive: bool = field(compare=False)
    future: Future = field(compare=False)
    keep_result: bool = field(compare=False, default=True)  # cache the result (False: large ones, a model)
    waiters: set = field(compare=False, default_factory=set)  # (session, channel, tag) that want it
    dropped: bool = field(compare=False, default=False)
    running: Future | None = field(compare=False, default=None)  # the executor's future, once it runs
    progress: Progress | None = field(compare=False, default=None)  # the last report of a job run in a thread here


@dataclass
class SchedulerStats:
    ran: int = 0
    cache_hits: int = 0
    joined: int = 0  # requests that found the same key queued or running and shared its run
    dropped: int = 0


class Scheduler:
    """Runs requests on ``slots`` executor slots, lowest priority first, sharing runs and results by key."""

    def __init__(self, executor: Executor | None = None, slots: int = 1, cache_size: int = 4096):
        self.slots = max(1, slots)
        self._executor = executor or ThreadPoolExecutor(self.slots, thread_name_prefix="vitcore-compute")
        self._owns_executor = executor is None
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._cache_size = cache_size
        self._queue: list[_Queued] = []
        self._by_key: dict[Hashable, _Queued] = {}  # queued or running
        self._current: dict[tuple[str, str], Hashable] = {}  # (session, channel) -> the tag it works on now
        self._running = 0
        self._running_exclusive = False
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self.stats = SchedulerStats()
        self._dispatcher = threading.Thread(target=self._dispatch, name="vitcore-scheduler", daemon=True)
        self._dispatcher.start()

    # --- requests -------------------------------------------------------------------------------------------
    def submit(
        self,
        key: Hashable,
        fn: Callable[..., Any],
        *args: Any,
        priority: int = 0,
        exclusive: bool = False,
        session: str = "",
        channel: str = "",
        tag: Hashable = None,
        keep_result: bool = True,
    ) -> Future:
        """A future of ``fn(*args)``, which must depend on nothing but ``key``. A cached result comes back
        at once; a request with the same key queued or running is joined. A request with a ``session``
        makes ``tag`` that session's current tag in ``channel`` (see :meth:`supersede`). With
        ``keep_result=False`` the result is not cached (a model, say): later requests run again."""
        if session:  # first, so that this session's stale requests do not run before this one
            self.supersede(session, channel, tag)
        with self._cond:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats.cache_hits += 1
                done: Future = Future()
                done.set_result(self._cache[key])
                return done
            entry = self._by_key.get(key)
            if entry is not None:
                self.stats.joined += 1
                if priority < entry.priority and entry in self._queue:
                    entry.priority = priority  # a more urgent request for the same work moves it up
                    heapq.heapify(self._queue)
            else:
                entry = _Queued(priority, next(self._seq), key, fn, args, exclusive, Future(), keep_result)
                self._by_key[key] = entry
                heapq.heappush(self._queue, entry)
            if session:
                entry.waiters.add((session, channel, tag))
            self._cond.notify_all()
            return entry.future

    def supersede(self, session: str, channel: str, tag: Hashable) -> int:
        """Make ``tag`` this session's current tag in ``channel``: its queued requests there under other tags
        are dropped, unless a request is also wanted under a current tag (another session's, say).
        Running requests finish (their results are cached). Returns how many were dropped."""
        dropped = 0
        with self._cond:
            if self._current.get((session, channel)) == tag:
                return 0
            self._current[(session, channel)] = tag
            for entry in self._queue:
                stale = {w for w in entry.waiters if w[:2] == (session, channel) and w[2] != tag}
                if not stale:
                    continue
                entry.waiters -= stale
                if not entry.waiters:
                    entry.dropped = True
                    self._by_key.pop(entry.key, None)
                    entry.future.set_exception(Dropped(f"replaced by a newer request of session {session[:8]}"))
                    dropped += 1
            if dropped:
                self._queue = [e for e in self._queue if not e.dropped]
                heapq.heapify(self._queue)
                self.stats.dropped += dropped
        return dropped

    def progress(self, key: Hashable) -> Progress | None:
        """The last progress report of the running request ``key`` (``Progress(0, "running")`` before its first
        or where the executor carries none back; None while it is queued, or when nothing runs under ``key``)."""
        with self._cond:
            entry = self._by_key.get(key)
        if entry is None or entry.running is None:
            return None
        return entry.progress or getattr(entry.running, "progress", None) or Progress(0.0, "running")

    def withdraw(self, key: Hashable, session: str) -> bool:
        """``session`` no longer wants request ``key`` (its user pressed Stop). When no other session waits on
        it, a queued request is dropped and a running one is aborted where the executor can (a worker process
        is killed and replaced); returns whether it was stopped."""
        with self._cond:
            entry = self._by_key.get(key)
            if entry is None:
                return False
            entry.waiters = {w for w in entry.waiters if w[0] != session}
            if entry.waiters:
                return False
            if entry in self._queue:
                entry.dropped = True
                self._by_key.pop(key, None)
                self._queue = [e for e in self._queue if not e.dropped]
                heapq.heapify(self._queue)
                self.stats.dropped += 1
                entry.future.set_exception(Dropped(f"withdrawn by session {session[:8]}"))
                return True
            running = entry.running
        abort = getattr(self._executor, "abort", None)
        return bool(running is not None and abort is not None and abort(running))

    @property
    def executor(self) -> Executor:
        return self._executor

    def cached(self, key: Hashable) -> Any | None:
        with self._cond:
            return self._cache.get(key)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._owns_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # --- running ---------------------------------------------------------------------------------------------
    def _next_runnable(self) -> _Queued | None:
        """The head of the queue if it may start now: an exclusive request waits for every slot to drain,
        and nothing starts past it or beside a running one."""
        if not self._queue or self._running_exclusive or self._running >= self.slots:
            return None
        head = self._queue[0]
        if head.exclusive and self._running > 0:
            return None
        return heapq.heappop(self._queue)

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                entry = None
                while not self._closed and (entry := self._next_runnable()) is None:
                    self._cond.wait()
                if self._closed or entry is None:
                    return
                self._running += 1
                self._running_exclusive = entry.exclusive
            if not entry.future.set_running_or_notify_cancel():  # every waiter cancelled it
                self._finished(entry, None, CancelledError())
                continue
            try:
                if hasattr(self._executor, "abort"):  # a worker pool: reports come back over its pipes
                    running = self._executor.submit(entry.fn, *entry.args)
                else:
                    running = self._executor.submit(self._reporting, entry, entry.fn, *entry.args)
                entry.running = running
            except Exception as e:  # the executor is broken or shut down
                self._finished(entry, None, e)
                continue
            running.add_done_callback(lambda f, entry=entry: self._finished(entry, *self._outcome(f)))

    @staticmethod
    def _reporting(entry: _Queued, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` in a thread of this process, keeping its progress reports on ``entry``."""

        def sink(fraction: float, what: str) -> None:
            entry.progress = Progress(fraction, what)

        with reporting_to(sink):
            return fn(*args)

    @staticmethod
    def _outcome(f: Future) -> tuple[Any, BaseException | None]:
        try:
            return f.result(), None
        except BaseException as e:  # noqa: BLE001 - handed to the waiters
            return None, e

    def _finished(self, entry: _Queued, result: Any, error: BaseException | None) -> None:
        with self._cond:
            self._running -= 1
            self._running_exclusive = False
            if self._by_key.get(entry.key) is entry:
                del self._by_key[entry.key]
            if error is None and entry.keep_result:
                self._cache[entry.key] = result
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            self.stats.ran += 1
            self._cond.notify_all()
        if entry.future.done():
            return
        if error is None:
            entry.future.set_result(result)
        else:
            entry.future.set_exception(error)
