"""The app's frame: its pages, the sidebar before each page, and the guard every page opens with.

Streamlit routes a session's first run by the physical ``pages/`` folder beside ``app.py`` (its older
multipage mode) until some run calls ``st.navigation``; a deep link opened first on a fresh server would
run ``pages/<name>.py`` alone, without this frame. :func:`open_page` notices that and reruns through it.
"""

from __future__ import annotations

import streamlit as st

from ui.engine import apply_thread_share
from ui.persist import restore, save
from ui.sidebar import sidebar
from ui.state import AppState, app_state
from ui.streamlit_private import routed_around_the_shell
from ui.trace import trace
from vitcore.compute.workers import WorkerDied

PAGES = [  # (file, title): the order of the navigation
    ("pages/model.py", "Model"),
    ("pages/lesson.py", "Lesson"),
    ("pages/circuits.py", "Circuits"),
    ("pages/graph.py", "Circuit graph"),
    ("pages/component.py", "Component"),
    ("pages/features.py", "Features"),
    ("pages/prune.py", "Prune"),
    ("pages/compare.py", "Compare"),
    ("pages/atlas.py", "Atlas"),
    ("pages/export.py", "Export"),
    ("pages/shortcut.py", "Shortcut"),
]


def app_pages() -> list:
    return [st.Page(path, title=title, default=i == 0) for i, (path, title) in enumerate(PAGES)]


def run_app() -> None:
    """One script run of the app: navigation, this session's share of the cores, the sidebar, the page."""
    page = st.navigation(app_pages())
    state = app_state()
    apply_thread_share(state)
    trace(state.session_uid, "run", page=page.title)
    for problem in restore(state) + sidebar(state):
        st.error(problem)
    if state.persist_problem:
        st.sidebar.caption(state.persist_problem)
    trace(state.session_uid, "sidebar")
    try:
        page.run()
    except WorkerDied as e:  # a job that stopped its worker on every try: one line, the session goes on
        st.error(str(e))
    finally:  # also when a click interrupts the run: what it changed so far is kept
        save(state)
    trace(state.session_uid, "done", page=page.title)


def open_page() -> AppState:
    """Every page's first call: this session's state, with the model and data the sidebar chose.

    Run around the shell, a new session reruns the same URL through it (``st.navigation`` here registers the
    app's pages, and Streamlit stops routing by folder); a session that has state draws the sidebar in place
    instead (only Streamlit's AppTest routes by folder on every run), so that a click in this run is not lost."""
    state = app_state()
    routed = routed_around_the_shell()
    if routed or state.chosen is None:  # also a folder-routed run the flag missed: a click that cut the first run short
        if routed and state.chosen is None:
            st.navigation(app_pages(), position="hidden")
            st.rerun()
        for problem in restore(state) + sidebar(state):
            st.error(problem)
        save(state)  # what the last run left (routed by folder, a page has no end to save at)
    return state


def trace_event(event: str, **fields: object) -> None:
    """Record a timing event of this session's run (only when ``VITCORE_TRACE`` is set: load tests)."""
    trace(app_state().session_uid, event, **fields)
