"""A session's work kept across a reload, a dropped connection and a server restart: a token in the URL
(``?session=...``), the work under it in the server's session store (``vitcore.session.SessionStore``).

The store is an SQLite file, ``VITCORE_SESSION_DB`` (default: in vitcore's cache folder; ``off``: nothing kept).
A page run brings a session's work back once, before the sidebar draws, and saves it when it changed: at the
start of every page (the work the last run left) and at the end of every run through the app's shell.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import streamlit as st

from ui.state import AppState
from vitcore.data import cache_dir
from vitcore.session import SessionStore, StoreUnavailable, TokenError, new_token
from vitcore.session.snapshot import session_from_json, session_to_json

TOKEN_PARAM = "session"
DB_ENV = "VITCORE_SESSION_DB"
WIDGETS = ("model_source", "model_path", "data_path")  # the sidebar's choices (an upload is not kept)


@st.cache_resource(show_spinner=False)
def session_store() -> SessionStore | str:
    """The server's store, or the one line that says why work is not kept."""
    path = os.environ.get(DB_ENV) or str(cache_dir() / "sessions.sqlite")
    if path == "off":
        return f"work is not kept across reloads ({DB_ENV}=off)"
    try:
        return SessionStore(path)
    except StoreUnavailable as e:
        return f"work is not kept across reloads: {e}"


def restore(state: AppState) -> list[str]:
    """On a session's first run: its work saved under the URL's token, or a fresh token; afterwards, the token kept
    in the URL. Returns the one-line problems to show (a bad token, a store that cannot be used)."""
    if state.token is not None:
        if state.token and st.query_params.get(TOKEN_PARAM) != state.token:
            st.query_params[TOKEN_PARAM] = state.token  # a URL without it (a link, a typed address): put it back
        return []
    store, token = session_store(), st.query_params.get(TOKEN_PARAM)
    if isinstance(store, str):
        state.token = ""  # nothing kept in this session
        return [f"This session's {store}."]
    problems = []
    if token:
        try:
            settings, workspaces = session_from_json(store.load(token))
            _apply(state, settings, workspaces)
            state.token = token
        except (TokenError, StoreUnavailable) as e:
            problems.append(str(e)[0].upper() + str(e)[1:] + ".")
    if state.token is None:
        state.token = new_token()
    st.query_params[TOKEN_PARAM] = state.token
    return problems


def _apply(state: AppState, settings: dict[str, Any], workspaces: list) -> None:
    for key in WIDGETS:
        if isinstance(settings.get(key), str):
            st.session_state[key] = settings[key]
    classes = settings.get("classes")
    if isinstance(classes, list):
        state.classes = [c for c in classes if isinstance(c, str)][:200]
    sliders = settings.get("sliders")
    if isinstance(sliders, dict):
        state.slider_values = {k: v for k, v in sliders.items() if isinstance(v, (int, float))}
    for key, work in workspaces:
        state.workspaces.put(key, work)


def save(state: AppState) -> None:
    """Keep the session's work under its token when it changed since the last save; a store that refuses it leaves
    its one line on ``state.persist_problem``."""
    store = session_store()
    if isinstance(store, str) or not state.token:
        return
    settings: dict[str, Any] = {k: st.session_state[k] for k in WIDGETS if isinstance(st.session_state.get(k), str)}
    settings |= {"classes": list(state.classes), "sliders": dict(state.slider_values)}
    work = session_to_json(settings, state.workspaces.items(), result_json=lambda r: _result_json(state, r))
    digest = hashlib.sha256(json.dumps(work, sort_keys=True).encode()).hexdigest()
    if digest == state.saved_digest:
        return
    try:
        store.save(state.token, work)
        state.saved_digest, state.persist_problem = digest, None
    except (StoreUnavailable, TokenError) as e:
        state.persist_problem = f"This session's work was not saved: {e}."


def _result_json(state: AppState, result: Any) -> str:
    """``result.to_json()``, computed once per result object (results are not changed once made)."""
    cached = state.result_json.get(id(result))
    if cached is None or cached[0] is not result:
        if len(state.result_json) > 64:  # results dropped since: start over rather than keep them alive
            state.result_json.clear()
        cached = state.result_json[id(result)] = (result, result.to_json())
    return cached[1]
