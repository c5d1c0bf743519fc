"""Fair CPU shares for the sessions of one app process: each gets its part of the cores for its torch work.

torch's intra-op thread count set inside a thread applies to that thread's parallel regions, and
Streamlit runs each session's script in a thread of its own, so a session that sets its count at the
start of every run cannot take the whole machine while other sessions are active.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import torch


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ThreadShare:
    """Splits ``cores`` evenly among the sessions seen in the last ``window_s`` seconds (at least one thread each).

    ``is_connected(session)``, when given, says whether a session's browser is still connected: a closed tab
    stops counting at once instead of after ``window_s``."""

    def __init__(
        self,
        cores: int | None = None,
        window_s: float = 120.0,
        clock=time.monotonic,
        is_connected: Callable[[str], bool] | None = None,
    ):
        self.cores = max(1, cores or available_cores())
        self.window_s = window_s
        self._clock = clock
        self._is_connected = is_connected
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def active(self) -> int:
        with self._lock:
            return len(self._seen)

    def threads_for(self, session: str) -> int:
        """Record ``session`` as active now and return its share of the cores."""
        now = self._clock()
        with self._lock:
            self._seen[session] = now
            for s, t in list(self._seen.items()):
                gone = self._is_connected is not None and s != session and not self._is_connected(s)
                if now - t > self.window_s or gone:
                    del self._seen[s]
            return max(1, self.cores // len(self._seen))

    def apply(self, session: str) -> int:
        """Set the calling thread's torch threads to the session's share; returns it."""
        n = self.threads_for(session)
        torch.set_num_threads(n)
        return n
