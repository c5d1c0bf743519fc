"""How a running job tells its waiters how far it is: ``report(fraction, what)`` from inside the job.

The job does not know where it runs. In a worker process the report travels back over the worker's pipe;
in a thread of this process it is stored on the request. Either way the waiters read it from the scheduler
(:meth:`vitcore.compute.Scheduler.progress`). Outside a job, a report goes nowhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

Sink = Callable[[float, str], None]
_local = threading.local()


@dataclass(frozen=True)
class Progress:
    """The last report of a running job."""

    fraction: float
    what: str = ""


def report(fraction: float, what: str = "") -> None:
    """Say that the running job is ``fraction`` (0..1) done, doing ``what``."""
    sink = getattr(_local, "sink", None)
    if sink is not None:
        sink(float(fraction), str(what))


@contextmanager
def reporting_to(sink: Sink) -> Iterator[None]:
    """Send this thread's :func:`report` calls to ``sink`` while the block runs."""
    previous = getattr(_local, "sink", None)
    _local.sink = sink
    try:
        yield
    finally:
        _local.sink = previous
