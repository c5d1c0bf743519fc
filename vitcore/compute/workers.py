"""Where jobs run: any job by name, and a pool of worker processes that load each model and data set once.

Worker processes keep the server's interpreter free for the pages: a job holds a worker, not the
process that draws every session's figures. Each worker is a plain ``python -m vitcore.compute.workers``
child with one torch thread, fed jobs over its stdin and answering on its stdout (progress reports while a
job runs, then its outcome), so that it starts clean whatever the parent is (multiprocessing would re-run the
parent's ``__main__``, which under Streamlit is the app script). The frames are pickles exchanged between this
program's own processes only; nothing a user sends is unpickled.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, BinaryIO, cast

from .figures import JOBS, Source
from .progress import Progress, reporting_to

PROGRESS, DONE = "progress", "done"  # the kinds of frame a worker sends: reports while a job runs, then its outcome


RETRIES = 2  # a job whose worker dies under it runs again on a fresh worker this many times before it fails


class WorkerDied(RuntimeError):
    """A job's worker process ended under it (killed, out of memory) more often than the pool retries, or the job was
    aborted; the message is one line for a page. The pool replaces the worker either way."""


def stopped_message(job: str, stops: int, reason: str) -> str:
    """The one line a page shows for a job that stopped its worker ``stops`` times."""
    times = {1: "once", 2: "twice", 3: "three times"}.get(stops, f"{stops} times")
    return f"this computation ({job}) stopped its worker {times} ({reason}); try fewer images or a smaller run"


def _name(fn: Any, args: tuple) -> str:
    """What a job is called in a message: the job kind of :func:`run_job`, else the function's name."""
    return str(args[0]) if fn is run_job and args else getattr(fn, "__name__", str(fn))


def run_job(kind: str, *args: Any) -> Any:
    """Run the job ``kind`` (a figure job of :data:`~vitcore.compute.figures.JOBS` or a long job of
    :data:`~vitcore.compute.long_jobs.LONG_JOBS`) here."""
    if kind in JOBS:
        return JOBS[kind](*args)
    from .long_jobs import LONG_JOBS

    return LONG_JOBS[kind](*args)


def load_source(source: Source) -> int:
    """Load the model, eval set and discovery set of ``source`` into this process (a worker's warm-up); returns the
    process id."""
    source.base()
    source.eval_set()
    source.discovery_set()
    return os.getpid()


def _send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError
    (size,) = struct.unpack("<Q", header)
    return pickle.loads(stream.read(size))


class _Worker:
    """One child process and the thread that feeds it jobs from the pool's queue."""

    def __init__(self, pool: WorkerPool, index: int):
        self.pool, self.index = pool, index
        self.current: Future | None = None  # the job this worker runs now
        self.process = self._start()
        self.thread = threading.Thread(target=self._serve, name=f"vitcore-worker-{index}", daemon=True)
        self.thread.start()

    def _start(self) -> subprocess.Popen:
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(self.pool.threads),
            "VITCORE_WORKER_THREADS": str(self.pool.threads),
            "VITCORE_WORKER_NICE": str(self.pool.nice),
        }
        return subprocess.Popen(
            [sys.executable, "-m", "vitcore.compute.workers"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )

    def _serve(self) -> None:
        while True:
            item = self.pool._jobs.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            self.current = future
            outcome = self._run(future, fn, args)
            self.current = None
            if outcome is None:
                continue
            ok, value = outcome
            (future.set_result if ok else future.set_exception)(value)

    def _run(self, future: Future, fn: Callable[..., Any], args: tuple) -> tuple[bool, Any] | None:
        """Run one job on this worker's process, on a fresh process again when the process dies under it (up to the
        pool's ``retries`` times); ``(ok, value)``, or None once the future has been failed with :class:`WorkerDied`."""
        stops = 0
        while True:
            try:
                _send(cast(BinaryIO, self.process.stdin), (fn, args))  # both pipes exist: _start asks for them
                while True:
                    frame = _receive(cast(BinaryIO, self.process.stdout))
                    if frame[0] != PROGRESS:
                        break
                    future.progress = Progress(*frame[1:])  # type: ignore[attr-defined]  # read by the scheduler
                _, ok, value = frame
                return ok, value
            except (EOFError, OSError, pickle.UnpicklingError) as e:
                job = _name(fn, args)
                self._restart()  # before the waiter hears of it: the pool is whole again when it does
                stops += 1
                if future in self.pool._aborted:
                    self.pool._aborted.discard(future)
                    future.set_exception(WorkerDied(f"worker {self.index} ended while running {job} (aborted)"))
                    return None
                if stops > self.pool.retries:
                    future.set_exception(WorkerDied(stopped_message(job, stops, str(e) or "no answer")))
                    return None
                self.pool.restarts += 1
                future.progress = Progress(0.0, f"a worker stopped; running {job} again on a fresh one")  # type: ignore[attr-defined]

    def _restart(self) -> None:
        self.process.kill()
        try:
            self.process.wait(timeout=10)  # reaped: no zombie left per death
        except subprocess.TimeoutExpired:
            pass
        self.process = self._start()

    def stop(self) -> None:
        try:
            cast(BinaryIO, self.process.stdin).close()
        except OSError:
            pass
        self.process.terminate()


class WorkerPool(Executor):
    """``processes`` worker processes with ``threads`` torch threads each, at OS niceness ``nice`` (above 0: the
    server's own threads, which draw the pages, get the CPU first). A worker that dies is replaced, and the job it
    ran runs again on the new one, up to ``retries`` times (``restarts`` counts those reruns)."""

    def __init__(self, processes: int, threads: int = 1, nice: int = 0, retries: int = RETRIES):
        self.processes, self.threads, self.nice, self.retries = processes, threads, nice, retries
        self.restarts = 0
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._aborted: set[Future] = set()
        self._workers = [_Worker(self, i) for i in range(processes)]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if kwargs:
            raise TypeError("worker jobs take positional arguments only")
        future: Future = Future()
        self._jobs.put((future, fn, args))
        return future

    def abort(self, future: Future) -> bool:
        """Stop the job of ``future`` now: a queued one is cancelled, a running one's worker is killed (and
        replaced); the future then fails with :class:`WorkerDied`. False when it has already finished."""
        if future.cancel():
            return True
        for worker in self._workers:
            if worker.current is future:
                self._aborted.add(future)
                worker.process.kill()
                return True
        return False

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    def warm(self, source: Source) -> list[int]:
        """Load ``source`` in the workers (one job per worker, queued together, so that idle workers take one
        each; blocks until done); the process ids that answered."""
        return sorted({f.result() for f in [self.submit(load_source, source) for _ in self._workers]})

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for _ in self._workers:
            self._jobs.put(None)
        for w in self._workers:
            w.stop()


def _serve_forever() -> None:
    """A worker's loop: read a job from stdin, run it, write (ok, result or exception) to stdout."""
    import torch

    torch.set_num_threads(int(os.environ.get("VITCORE_WORKER_THREADS", "1")))
    os.nice(int(os.environ.get("VITCORE_WORKER_NICE", "0")))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server; the server's closed pipe stops this one
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything a job prints goes to the server's log, not into the frames
    try:
        with reporting_to(lambda fraction, what: _send(stdout, (PROGRESS, fraction, what))):
            while True:
                try:
                    fn, args = _receive(stdin)
                except EOFError:
                    return
                try:
                    result = (DONE, True, fn(*args))
                except Exception as e:  # noqa: BLE001 - handed to the waiting future
                    result = (DONE, False, e)
                try:
                    _send(stdout, result)
                except (pickle.PicklingError, TypeError, AttributeError) as e:
                    _send(stdout, (DONE, False, RuntimeError(f"the job's result cannot be sent back: {e}")))
    except (BrokenPipeError, ConnectionResetError):  # the server went away mid-job: nothing to answer, nothing to say
        os._exit(0)


if __name__ == "__main__":
    _serve_forever()
