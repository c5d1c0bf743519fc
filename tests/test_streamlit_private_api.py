"""The private Streamlit APIs the app relies on, pinned: if an upgrade changes one, these fail loudly.

All of them live in ``ui/streamlit_private.py``:

- ``ScriptRequests._state``: a long fragment sees a queued rerun and returns early;
- ``PagesManager.uses_pages_directory``: a page run by Streamlit's folder routing reruns through the app's
  navigation.
"""

from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.filterwarnings("ignore")


def test_a_widget_rerun_queued_behind_a_running_fragment_is_seen(monkeypatch):
    from streamlit.runtime.scriptrunner_utils import script_run_context
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData, ScriptRequests

    import ui.streamlit_private as common

    requests = ScriptRequests()
    monkeypatch.setattr(
        script_run_context, "get_script_run_ctx", lambda *a, **k: SimpleNamespace(script_requests=requests)
    )
    assert common.rerun_pending() is False
    requests.request_rerun(RerunData(fragment_id="prune-panel"))  # a pill clicked while the fragment runs
    assert requests.on_scriptrunner_yield() is None  # Streamlit does not interrupt the fragment for it ...
    assert common.rerun_pending() is True  # ... so the fragment asks, and returns early
    monkeypatch.setattr(script_run_context, "get_script_run_ctx", lambda *a, **k: None)  # outside a script run
    assert common.rerun_pending() is False


def test_a_run_stopped_for_a_fast_rerun_is_seen(monkeypatch):
    """A page link stops the running script and (runner.fastReruns) starts the next run in a new
    thread at once; the old run must see the stop, or both work on the session's state together."""
    from streamlit import config
    from streamlit.runtime.scriptrunner_utils import script_run_context
    from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequests

    import ui.streamlit_private as common

    assert config.get_option("runner.fastReruns") is True  # the default this relies on
    requests = ScriptRequests()
    monkeypatch.setattr(
        script_run_context, "get_script_run_ctx", lambda *a, **k: SimpleNamespace(script_requests=requests)
    )
    assert common.rerun_pending() is False
    requests.request_stop()  # what AppSession.request_rerun does to the running script under fast reruns
    assert common.rerun_pending() is True


def test_folder_routing_is_the_flag_the_page_guard_reads_and_navigation_clears_it():
    import inspect

    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import script_runner

    from ui.streamlit_private import routed_around_the_shell

    assert "uses_pages_directory" in vars(PagesManager), "Streamlit renamed the flag ui/shell.py reads"
    # the script runner runs a page file alone (its older multipage mode) exactly when the flag is set ...
    assert "if PagesManager.uses_pages_directory:" in inspect.getsource(script_runner.ScriptRunner), (
        "folder routing is decided elsewhere now"
    )
    # ... and st.navigation clears it for the whole process, which is what open_page's rerun relies on
    assert "PagesManager.uses_pages_directory = False" in inspect.getsource(st.navigation)
    saved = PagesManager.uses_pages_directory
    try:
        PagesManager.uses_pages_directory = True
        assert routed_around_the_shell() is True
        PagesManager.uses_pages_directory = False
        assert routed_around_the_shell() is False
    finally:
        PagesManager.uses_pages_directory = saved


def test_the_session_manager_says_whether_a_session_is_still_connected(monkeypatch):
    """``ui.resources.session_connected`` asks ``Runtime._session_mgr.is_active_session`` (closed tabs stop
    counting in the cores' split at once)."""
    import inspect

    from streamlit.runtime import Runtime
    from streamlit.runtime.session_manager import SessionManager

    import ui.resources as resources

    assert "self._session_mgr" in inspect.getsource(Runtime.__init__)
    assert list(inspect.signature(SessionManager.is_active_session).parameters) == ["self", "session_id"]
    asked = []
    manager = SimpleNamespace(is_active_session=lambda sid: asked.append(sid) or sid == "open")
    monkeypatch.setattr(Runtime, "exists", classmethod(lambda cls: True))
    monkeypatch.setattr(Runtime, "instance", classmethod(lambda cls: SimpleNamespace(_session_mgr=manager)))
    assert resources.session_connected("open") is True and resources.session_connected("closed") is False
    assert asked == ["open", "closed"]
