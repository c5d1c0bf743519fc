"""The sidebar: which model and data this session uses."""

from __future__ import annotations

import os
import sys

import streamlit as st

from ui.resources import load_upload, shared_checkpoint, shared_data, shared_split, shared_thread_share
from ui.state import AppState
from vitcore.assets import shortcut_checkpoint
from vitcore.errors import VitcoreError

SHORTCUT_MODEL = "Shortcut model (planted)"


def server_paths_allowed() -> bool:
    """Loading files from the server's disk is off unless the operator starts the app with
    ``streamlit run serve.py -- --allow-server-paths`` or sets ``VITCORE_ALLOW_SERVER_PATHS=1``."""
    return "--allow-server-paths" in sys.argv[1:] or os.environ.get("VITCORE_ALLOW_SERVER_PATHS") == "1"


def preloaded() -> tuple[str, str | None] | None:
    """The model (and data) the operator loads at start-up for everyone: ``streamlit run serve.py -- --preload MODEL
    [--preload-data DATA]``, or ``VITCORE_PRELOAD`` (and ``VITCORE_PRELOAD_DATA``); None when there is none."""
    args = sys.argv[1:]

    def flag(name: str) -> str | None:
        return args[args.index(name) + 1] if name in args[:-1] else None

    model = flag("--preload") or os.environ.get("VITCORE_PRELOAD")
    if not model:
        return None
    return model, flag("--preload-data") or os.environ.get("VITCORE_PRELOAD_DATA") or None


PRELOADED = "Preloaded by the operator"


def sidebar(state: AppState) -> list[str]:
    """Draw the model and data choices and set them on ``state``; returns error messages (the app falls back to the
    defaults).
    """
    problems: list[str] = []
    with st.sidebar:
        st.subheader("Model")
        planted = shortcut_checkpoint()
        preload = preloaded()
        sources = (
            ["Shipped model"]
            + ([SHORTCUT_MODEL] if (planted / "config.json").exists() else [])
            + ([PRELOADED] if preload else [])
            + ["Upload a zip"]
            + (["Path on this machine"] if server_paths_allowed() else [])
        )
        if st.session_state.get("model_source") not in sources:
            st.session_state["model_source"] = "Shipped model"
        source = st.radio("Checkpoint", sources, key="model_source", label_visibility="collapsed")
        ckpt, ckpt_path = None, None
        try:
            if source == "Upload a zip":
                upload = st.file_uploader(
                    "Checkpoint or exported pruned model (.zip)", type=["zip"], key="model_upload"
                )
                if upload is not None:
                    ckpt, ckpt_path = load_upload(upload)
            elif source == SHORTCUT_MODEL:
                ckpt, ckpt_path = shared_checkpoint(str(planted)), str(planted)
            elif source == PRELOADED and preload:
                ckpt, ckpt_path = shared_checkpoint(preload[0]), preload[0]
                st.caption(f"{preload[0]}" + (f" with {preload[1]}" if preload[1] else ""))
            elif source == "Path on this machine":
                path = st.text_input("Checkpoint folder or zip, local timm folder, or timm:NAME", key="model_path")
                if path:
                    ckpt, ckpt_path = shared_checkpoint(path), path
        except VitcoreError as e:
            problems.append(f"Could not load that model: {e}. Using the shipped model.")
        if ckpt is None:
            ckpt, ckpt_path = shared_checkpoint(None), None
        st.caption(f"{len(ckpt.model.components)} components · sha256 {ckpt.sha256[:12]}")
        st.subheader("Data")
        if source == PRELOADED and preload:
            data_path = preload[1]
            st.caption("The data preloaded with the model." if data_path else "Bundled subsets.")
        elif server_paths_allowed():
            data_path = (
                st.text_input(
                    "Tiny ImageNet, or a labelled image folder or zip (empty: bundled subsets)", key="data_path"
                ).strip()
                or None
            )
        else:
            data_path = None
            st.caption(
                "Bundled subsets. Paths on the server are off; the operator enables them with `-- "
                "--allow-server-paths`."
            )
        try:
            discovery = shared_data(data_path, ckpt, ckpt.sha256, "train")
            eval_set = shared_data(data_path, ckpt, ckpt.sha256, "val")
        except VitcoreError as e:
            problems.append(f"Could not use that data with this model: {e}. Using the shipped model and its data.")
            ckpt, ckpt_path = shared_checkpoint(None), None
            data_path, discovery, eval_set = None, shared_split(None, "train"), shared_split(None, "val")
        st.caption(f"discovery {len(discovery)} images · eval {len(eval_set)} images")
        share = shared_thread_share()
        st.caption(
            f"torch threads for this session: {state.torch_threads or '?'} of {share.cores} cores ({share.active()} "
            "active session(s))"
        )
    state.use(ckpt, discovery, eval_set, data_path or "bundled", ckpt_path)
    return problems
