"""The server's start-up warm-up (``serve.py``): what every session's first page needs, loaded once into the
shared caches and the compute workers, and every module the pages import."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from ui.gallery import GALLERY_SIZE, gallery_html
from ui.resources import (
    shared_checkpoint,
    shared_data,
    shared_eval_logits,
    shared_latency_model,
    shared_scheduler,
    shared_split,
    shipped_source,
)
from ui.shell import PAGES
from ui.sidebar import preloaded
from ui.trace import trace
from vitcore.compute.figures import Source
from vitcore.playground import Playground


def import_page_modules() -> list[str]:
    """Import every module the app's pages import, so that no session's first page pays for it (under Python's
    import lock, six sessions opening the app at once wait for one another); returns the module names."""
    root = Path(__file__).resolve().parent.parent
    names: list[str] = []
    for path, _title in PAGES:
        for node in ast.parse((root / path).read_text()).body:
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    for name in dict.fromkeys(names):
        importlib.import_module(name)
    return list(dict.fromkeys(names))


def warm_shared_resources() -> None:
    """Load what every session's first page needs (the shipped model, the bundled data, the full
    model's eval logits, the default gallery, the latency cost model) into the shared caches, so that
    the first users do not wait for it. Run once at server start by ``serve.py`` (in a background thread)."""
    trace("server", "warm_start")
    import_page_modules()
    ckpt = shared_checkpoint(None)
    shared_split(None, "train")
    eval_set = shared_split(None, "val")
    gallery_html(ckpt.model, eval_set, ckpt.sha256, "bundled", tuple(range(min(GALLERY_SIZE, len(eval_set)))))
    shared_eval_logits(ckpt.model, eval_set, ckpt.sha256, "bundled")
    shared_latency_model(ckpt.model, ckpt.sha256)
    scheduler = shared_scheduler()
    warm = getattr(scheduler.executor, "warm", None)  # a worker pool or a Ray cluster
    if warm is not None:
        warm(shipped_source())  # the workers start and load the shipped model and data once
    # the full model's all-class figures, which every session's Prune page compares against: once, for everyone
    Playground(ckpt.model, eval_set, [], scheduler=scheduler, source=shipped_source(), session="warm-up").slow(
        ckpt.model.components.ones()
    )
    warm_preloaded()
    trace("server", "warm_done")


def warm_preloaded() -> Source | None:
    """Load the operator's preloaded model and data (``--preload``, see ``ui.sidebar.preloaded``) into the shared
    caches and the workers, as the shipped ones are; returns its source, or None when nothing is preloaded."""
    preload = preloaded()
    if preload is None:
        return None
    model, data = preload
    ckpt = shared_checkpoint(model)
    shared_data(data, ckpt, ckpt.sha256, "train")
    eval_set = shared_data(data, ckpt, ckpt.sha256, "val")
    shared_eval_logits(ckpt.model, eval_set, ckpt.sha256, data or "bundled")
    shared_latency_model(ckpt.model, ckpt.sha256)
    source = Source(model, ckpt.sha256, data, data or "bundled")
    warm = getattr(shared_scheduler().executor, "warm", None)
    if warm is not None:
        warm(source)
    return source
