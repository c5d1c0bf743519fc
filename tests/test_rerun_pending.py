"""The Prune page's early exit: Streamlit's queued fragment rerun is visible to the running fragment."""

from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.filterwarnings("ignore")


def test_a_widget_rerun_queued_behind_a_running_fragment_is_seen(monkeypatch):
    import pages.common as common
    from streamlit.runtime.scriptrunner_utils import script_run_context
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData, ScriptRequests

    requests = ScriptRequests()
    monkeypatch.setattr(script_run_context, "get_script_run_ctx", lambda *a, **k: SimpleNamespace(script_requests=requests))
    assert common.rerun_pending() is False
    requests.request_rerun(RerunData(fragment_id="prune-panel"))  # a pill clicked while the fragment runs
    assert requests.on_scriptrunner_yield() is None  # Streamlit does not interrupt the fragment for it ...
    assert common.rerun_pending() is True  # ... so the fragment asks, and returns early
    monkeypatch.setattr(script_run_context, "get_script_run_ctx", lambda *a, **k: None)  # outside a script run
    assert common.rerun_pending() is False


def test_a_run_stopped_for_a_fast_rerun_is_seen(monkeypatch):
    """A page link stops the running script and (runner.fastReruns) starts the next run in a new
    thread at once; the old run must see the stop, or both work on the session's state together."""
    import pages.common as common
    from streamlit import config
    from streamlit.runtime.scriptrunner_utils import script_run_context
    from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequests

    assert config.get_option("runner.fastReruns") is True  # the default this relies on
    requests = ScriptRequests()
    monkeypatch.setattr(script_run_context, "get_script_run_ctx", lambda *a, **k: SimpleNamespace(script_requests=requests))
    assert common.rerun_pending() is False
    requests.request_stop()  # what AppSession.request_rerun does to the running script under fast reruns
    assert common.rerun_pending() is True
