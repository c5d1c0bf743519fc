"""Faults on purpose during a load test: a compute worker of the app killed every few seconds (SIGKILL, as the
kernel's OOM killer would), so that the harness can count what the pages saw of it.

Used by ``benchmarks/load_test.py --kill-worker-every S``; Linux only (it reads /proc).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

WORKER_COMMAND = b"vitcore.compute.workers"


def compute_workers() -> list[int]:
    """The pids of this machine's running compute worker processes (``python -m vitcore.compute.workers``)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if WORKER_COMMAND in cmdline:
            pids.append(int(entry.name))
    return pids


class WorkerKiller:
    """``with WorkerKiller(every_s=30) as killer: ...``: kills one random compute worker every ``every_s`` seconds
    while the block runs; ``killer.kills`` lists (seconds since the start, pid) of each kill."""

    def __init__(self, every_s: float, seed: int = 0):
        self.every_s = every_s
        self.kills: list[tuple[float, int]] = []
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-killer", daemon=True)

    def _run(self) -> None:
        start = time.perf_counter()
        while not self._stop.wait(self.every_s):
            pids = compute_workers()
            if not pids:
                continue
            pid = self._random.choice(pids)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended between the listing and the kill
                continue
            self.kills.append((round(time.perf_counter() - start, 1), pid))

    def __enter__(self) -> WorkerKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
