"""Long runs through the server's compute service: a circuit run or a fine-tune is queued with every session's
work (after their fast figures), shared with any session that asks for the same run, shown with its progress,
and withdrawn when the user presses Stop (its worker is stopped unless another session still waits on it)."""

from __future__ import annotations

import copy
from collections.abc import Hashable
from concurrent.futures import Future
from typing import Any

import torch

from ui.longrun import progress_bar
from ui.resources import shared_scheduler
from ui.state import AppState
from vitcore.circuits.result import CircuitResult
from vitcore.compute.figures import keep_bytes
from vitcore.compute.long_jobs import discovery_key, finetune_key, options_key
from vitcore.compute.workers import run_job
from vitcore.model import VisionTransformer
from vitcore.playground import EXACT

LONG = EXACT  # long runs queue with the exact figures' chunks, in order of arrival: after every session's faster tiers
POLL_S = 0.25


def await_job(state: AppState, key: Hashable, future: Future, label: str) -> Any:
    """Wait for a submitted long run with a progress bar. Stop (any interruption of the script) withdraws this
    session's request before the interruption goes on."""
    scheduler = shared_scheduler()
    update = progress_bar(label)
    try:
        while True:
            try:
                return future.result(timeout=POLL_S)
            except TimeoutError:
                report = scheduler.progress(key)
                if report is None:
                    update(0.0, "queued behind other work on this server")
                else:
                    update(report.fraction, report.what)
    except BaseException:
        scheduler.withdraw(key, state.session_uid)
        raise


def _submit(state: AppState, key: Hashable, kind: str, *args: Any, keep_result: bool = True) -> Future:
    """Queue the long job ``kind`` for this session; a newer request of the same kind supersedes its queued one."""
    return shared_scheduler().submit(
        key,
        run_job,
        kind,
        *args,
        priority=LONG,
        session=state.session_uid,
        channel=kind,
        tag=key,
        keep_result=keep_result,  # False for a model: not kept once delivered
    )


def run_discovery(state: AppState, method: str, **options: Any) -> CircuitResult:
    """A circuit run of ``method`` on the session's classes and discovery images (options as
    :func:`vitcore.circuits.discover` takes them), through the compute service; this session's own copy."""
    src, classes = state.source(), tuple(state.classes)
    key = discovery_key(src, classes, method, **options)
    future = _submit(state, key, "discover", src, classes, method, options_key(options))
    return copy.deepcopy(await_job(state, key, future, method))


def run_finetune(
    state: AppState, mask: torch.Tensor, start: VisionTransformer | None, **options: Any
) -> tuple[VisionTransformer, list[float]]:
    """Fine-tune the session's pruned model for ``mask`` (from ``start`` when it was already fine-tuned) through the
    compute service; ``options``: steps, lr, distill, focus. Returns this session's own copy and the losses."""
    src, classes, keep = state.source(), tuple(state.classes), keep_bytes(mask)
    key = finetune_key(src, keep, start, classes, **options)
    future = _submit(state, key, "finetune", src, keep, start, classes, options_key(options), keep_result=False)
    model, losses = await_job(state, key, future, "fine-tuning")
    return model.clone(), list(losses)
