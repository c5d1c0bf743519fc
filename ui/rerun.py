"""Whether the user has acted since this script run began: long work ends early instead of finishing for nobody.

This reads Streamlit's private request state; ``tests/test_streamlit_private_api.py`` fails loudly when it changes.
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
