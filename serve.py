"""Serve the app and warm its shared caches at start-up: ``streamlit run serve.py``.

The server accepts connections at once; a background thread loads what every session's first page
needs (torch, the shipped model, the bundled data, the full model's eval logits, the default gallery,
the latency cost model) into the caches all sessions share. A session that arrives earlier waits for
the same computation instead of repeating it. ``streamlit run app.py`` runs the same app without the
warm-up."""

import threading
from contextlib import asynccontextmanager

import streamlit as st


def _warm() -> None:
    import logging

    # the modules the first session's script imports, in the order it imports them (app.py, ui.shell, ui.engine,
    # ui.resources, vitcore): two threads importing torchvision's modules in different orders can each find the
    # other's half initialised (an ImportError in the session's first page)
    import ui.resources  # noqa: F401
    from ui.warmup import warm_shared_resources

    # the shared caches are filled outside any session's script run, which Streamlit notes once per cache: expected here
    quiet = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        warm_shared_resources()
    finally:
        quiet.setLevel(level)


@asynccontextmanager
async def warm_up(app):
    threading.Thread(target=_warm, name="vitcore-warm-up", daemon=True).start()
    yield


app = st.App("app.py", lifespan=warm_up)
