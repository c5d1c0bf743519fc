"""Jobs on a Ray cluster instead of this machine's worker processes: for a class larger than one server's cores.

The operator starts the app with ``VITCORE_APP_RAY=<address>`` (``auto`` or ``ray://head:10001`` for a running
cluster, ``local`` for a Ray started on this machine). Each job is a Ray task of one CPU; a Ray worker keeps the
models and data it loaded for the next job, as a local worker process does. A cluster's nodes need this package
installed and, for anything but the shipped model and data, the same files at the same paths (shared storage).
Timing jobs then measure the cluster's nodes, not this machine. Progress reports are not carried back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import torch

from .figures import Source
from .workers import RETRIES, WorkerDied, load_source, stopped_message
from .workers import _name as job_name


def start_ray(address: str | None, num_cpus: int | None) -> bool:
    """Connect to the Ray cluster at ``address`` (None: start one of ``num_cpus`` CPUs here) unless this process is
    connected already; True when this call connected it (its caller then shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        address=address,
        num_cpus=None if address else (num_cpus or os.cpu_count()),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    return True


def _call(fn: Callable[..., Any], args: tuple) -> Any:
    torch.set_num_threads(1)  # one CPU per task, as Ray schedules it
    return fn(*args)


class RayPool(Executor):
    """Runs jobs as Ray tasks; ``address`` as ``ray.init`` takes it (None: a Ray of ``processes`` CPUs here)."""

    def __init__(self, address: str | None = None, processes: int | None = None):
        import ray

        self._ray = ray
        self._started_here = start_ray(address, processes)
        self._remote = ray.remote(num_cpus=1, max_retries=RETRIES)(_call)  # a task whose worker died runs again
        self.processes = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._refs: dict[Future, Any] = {}
        self._aborted: set[Future] = set()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if kwargs:
            raise TypeError("Ray jobs take positional arguments only")
        ref = self._remote.remote(fn, args)
        future: Future = Future()
        future.set_running_or_notify_cancel()
        self._refs[future] = ref
        ref.future().add_done_callback(lambda done: self._settle(future, done, job_name(fn, args)))
        return future

    def _settle(self, future: Future, done: Future, job: str) -> None:
        """Pass a task's outcome on: the job's own exception, or :class:`WorkerDied` for a task that was cancelled
        or whose worker ended more often than Ray retries it."""
        self._refs.pop(future, None)
        from ray import exceptions

        try:
            future.set_result(done.result())
        except exceptions.RayTaskError as e:  # the job raised: pass on its own exception
            cause = getattr(e, "cause", None)
            future.set_exception(cause if isinstance(cause, BaseException) else e)
        except exceptions.TaskCancelledError:
            future.set_exception(WorkerDied(f"the Ray task running {job} ended before its job did (aborted)"))
        except exceptions.RayError as e:  # its worker or node died on every try (a cancelled task is never retried)
            if future in self._aborted:
                future.set_exception(WorkerDied(f"the Ray task running {job} ended before its job did (aborted)"))
            else:
                future.set_exception(WorkerDied(stopped_message(job, RETRIES + 1, type(e).__name__)))
        finally:
            self._aborted.discard(future)

    def abort(self, future: Future) -> bool:
        """Cancel the job of ``future`` (its Ray worker is stopped); False when it has already finished."""
        ref = self._refs.get(future)
        if ref is None:
            return False
        self._aborted.add(future)
        self._ray.cancel(ref, force=True)
        return True

    def warm(self, source: Source) -> list[int]:
        """Load ``source`` in as many Ray workers as the cluster has CPUs (a worker may take more than one)."""
        return sorted({f.result() for f in [self.submit(load_source, source) for _ in range(self.processes)]})

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._started_here:
            self._ray.shutdown()
