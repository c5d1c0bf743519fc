"""Every private Streamlit API the app relies on, in one place; ``tests/test_streamlit_private_api.py`` pins each,
so an upgrade that changes one fails loudly there instead of quietly in a class.

- ``ScriptRequests._state``: a long run sees that the user acted, or that it was stopped, and ends early;
- ``PagesManager.uses_pages_directory``: a page run by Streamlit's folder routing reruns through the navigation;
- ``Runtime._session_mgr``: whether a session's browser is still connected (the thread share counts it);
- ``get_script_run_ctx``: which session this script run belongs to.
"""

from __future__ import annotations


def rerun_pending() -> bool:
    """True when this run should end early: the user has acted since it began, or it was told to stop.

    A widget inside an ``st.fragment`` does not interrupt the fragment's run in progress (Streamlit
    queues the rerun), so long work in a fragment checks this between steps and returns early.
    A page link or a widget outside the fragment instead stops this run and, with
    ``runner.fastReruns`` (the default), starts the next run at once in a new script thread: until
    this one returns, both run, so it must notice the stop too. Answers False outside a script run."""
    from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    requests = getattr(ctx, "script_requests", None)
    return getattr(requests, "_state", None) in (ScriptRequestType.RERUN, ScriptRequestType.STOP)


def routed_around_the_shell() -> bool:
    """True when Streamlit ran a page file directly by its folder (a first deep link on a fresh server)."""
    from streamlit.runtime.pages_manager import PagesManager

    return bool(PagesManager.uses_pages_directory)


def session_connected(session_id: str) -> bool:
    """Whether a Streamlit session's browser is still connected (True when there is no server to ask)."""
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return True
    return Runtime.instance()._session_mgr.is_active_session(session_id)


def script_session_id() -> str | None:
    """The id of the session this script run belongs to (None outside a script run)."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx else None
