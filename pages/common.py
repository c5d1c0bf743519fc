"""Shared Streamlit glue: cached shared resources, the sidebar, and per-session state."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import time
import uuid

import streamlit as st
import torch

from vitcore import load_split
from vitcore.checkpoint import Checkpoint, load_checkpoint, parse_checkpoint, read_zip_parts
from vitcore.data import ImageSet
from vitcore.errors import VitcoreError
from vitcore.playground import Playground
from vitcore.runtrace import trace
from vitcore.threadshare import ThreadShare

@st.cache_resource(show_spinner="Loading model…")
def shared_checkpoint(path: str | None) -> Checkpoint:
    """One model per path, shared by every session: read-only by contract."""
    ckpt = load_checkpoint(path)
    for p in ckpt.model.parameters():
        p.requires_grad_(False)
    return ckpt


@st.cache_resource(show_spinner="Loading model…", max_entries=4, ttl=3600)
def shared_uploaded_checkpoint(digest: str, weights: bytes, config: bytes) -> Checkpoint:
    ckpt = parse_checkpoint(weights, config, "uploaded checkpoint")
    for p in ckpt.model.parameters():
        p.requires_grad_(False)
    return ckpt


@st.cache_resource(show_spinner="Loading images…")
def shared_split(path: str | None, split: str) -> ImageSet:
    return load_split(path, split)


@st.cache_resource(show_spinner="Classifying the eval images…")
def shared_eval_logits(_model, _eval_set: ImageSet, model_sha: str, data_key: str) -> torch.Tensor:
    """The base model's logits on the eval set, computed once per model and data set."""
    from vitcore.evaluate import predict_logits

    return predict_logits(_model, _eval_set.images)


@st.cache_resource(show_spinner="Measuring this machine's latency…")
def shared_latency_model(_model, model_sha: str):
    """Batch-1 latency against MACs on this machine, fitted once per model and shared by every session."""
    from vitcore.playground import fit_latency_model

    return fit_latency_model(_model)


@st.cache_resource
def shared_thread_share() -> ThreadShare:
    """The process's cores, split among the active sessions (``VITCORE_APP_CORES`` overrides the count)."""
    return ThreadShare(int(os.environ.get("VITCORE_APP_CORES", "0")) or None)


def warm_shared_resources() -> None:
    """Load what every session's first page needs (the shipped model, the bundled data, the full
    model's eval logits, the default gallery, the latency cost model) into the shared caches, so that
    the first users do not wait for it. Run once at server start by ``serve.py`` (in a background thread)."""
    from pages.gallery import GALLERY_SIZE, gallery_html

    trace("server", "warm_start")
    ckpt = shared_checkpoint(None)
    shared_split(None, "train")
    eval_set = shared_split(None, "val")
    gallery_html(ckpt.model, eval_set, ckpt.sha256, "bundled", tuple(range(min(GALLERY_SIZE, len(eval_set)))))
    shared_eval_logits(ckpt.model, eval_set, ckpt.sha256, "bundled")
    shared_latency_model(ckpt.model, ckpt.sha256)
    trace("server", "warm_done")


def apply_thread_share() -> int:
    """Limit this run's torch threads to the session's share of the cores, so one user cannot starve the others."""
    session = st.session_state.setdefault("session_uid", uuid.uuid4().hex)
    st.session_state["torch_threads"] = shared_thread_share().apply(session)
    return st.session_state["torch_threads"]


def trace_event(event: str, **fields: object) -> None:
    """Record a timing event of this session's run (only when ``VITCORE_TRACE`` is set: load tests)."""
    trace(st.session_state.get("session_uid", "?"), event, **fields)


def rerun_pending() -> bool:
    """True when this run should end early: the user has acted since it began, or it was told to stop.

    A widget inside an ``st.fragment`` does not interrupt the fragment's run in progress (Streamlit
    1.67 queues the rerun), so long work in a fragment checks this between steps and returns early.
    A page link or a widget outside the fragment instead stops this run and, with
    ``runner.fastReruns`` (the default), starts the next run at once in a new script thread: until
    this one returns, both run, so it must notice the stop too. Reads Streamlit's private request
    state (pinned version); answers False if that is not there."""
    from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    requests = getattr(ctx, "script_requests", None)
    return getattr(requests, "_state", None) in (ScriptRequestType.RERUN, ScriptRequestType.STOP)


def user_moved_on(settle_s: float = 0.0) -> bool:
    """Wait up to ``settle_s`` seconds for the user to act again; True as soon as a rerun is pending.

    Before costly figures of a keep-set the user may already have left, so that quick toggling
    starts no work that the next toggle would throw away."""
    end = time.monotonic() + settle_s
    while not rerun_pending():
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)
    return True


def state_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _load_upload(upload) -> Checkpoint:
    data = upload.getvalue()
    weights, config = read_zip_parts(io.BytesIO(data), f"'{upload.name}'")
    return shared_uploaded_checkpoint(hashlib.sha256(data).hexdigest(), weights, config)


def server_paths_allowed() -> bool:
    """Loading files from the server's disk is off unless the operator starts the app with
    ``streamlit run app.py -- --allow-server-paths`` or sets ``VITCORE_ALLOW_SERVER_PATHS=1``."""
    return "--allow-server-paths" in sys.argv[1:] or os.environ.get("VITCORE_ALLOW_SERVER_PATHS") == "1"


def sidebar() -> list[str]:
    """Model and data choices; returns error messages (the app falls back to the defaults)."""
    problems: list[str] = []
    with st.sidebar:
        st.subheader("Model")
        sources = ["Shipped model", "Upload a zip"] + (["Path on this machine"] if server_paths_allowed() else [])
        if st.session_state.get("model_source") not in sources:
            st.session_state["model_source"] = "Shipped model"
        source = st.radio("Checkpoint", sources, key="model_source", label_visibility="collapsed")
        ckpt = None
        try:
            if source == "Upload a zip":
                upload = st.file_uploader("Checkpoint or exported pruned model (.zip)", type=["zip"], key="model_upload")
                if upload is not None:
                    ckpt = _load_upload(upload)
            elif source == "Path on this machine":
                path = st.text_input("Checkpoint folder or zip", key="model_path")
                if path:
                    ckpt = shared_checkpoint(path)
        except VitcoreError as e:
            problems.append(f"Could not load that model: {e}. Using the shipped model.")
        if ckpt is None:
            ckpt = shared_checkpoint(None)
        st.caption(f"{len(ckpt.model.components)} components · sha256 {ckpt.sha256[:12]}")
        st.subheader("Data")
        if server_paths_allowed():
            data_path = st.text_input("Tiny ImageNet folder or zip (empty: bundled subsets)", key="data_path").strip() or None
        else:
            data_path = None
            st.caption("Bundled subsets. Paths on the server are off; the operator enables them with `-- --allow-server-paths`.")
        try:
            discovery, eval_set = shared_split(data_path, "train"), shared_split(data_path, "val")
        except VitcoreError as e:
            problems.append(f"Could not read that data: {e}. Using the bundled subsets.")
            data_path, discovery, eval_set = None, shared_split(None, "train"), shared_split(None, "val")
        if ckpt.wnids and ckpt.wnids != eval_set.wnids:
            problems.append("The model's classes differ from the data set's classes; using the bundled subsets.")
            data_path, discovery, eval_set = None, shared_split(None, "train"), shared_split(None, "val")
        st.caption(f"discovery {len(discovery)} images · eval {len(eval_set)} images")
        share = shared_thread_share()
        st.caption(f"torch threads for this session: {st.session_state.get('torch_threads', '?')} of {share.cores} cores ({share.active()} active session(s))")
    st.session_state["ckpt"] = ckpt
    st.session_state["discovery"] = discovery
    st.session_state["eval_set"] = eval_set
    st.session_state["data_key"] = data_path or "bundled"
    if st.session_state.get("model_sha") != ckpt.sha256:  # a new model invalidates this session's work
        for key in ("keep", "results", "playground", "history", "finetuned"):
            st.session_state.pop(key, None)
        st.session_state["model_sha"] = ckpt.sha256
    return problems


def class_options() -> dict[str, str]:
    """Human-readable class label -> wnid, for searchable multiselects."""
    data = st.session_state["eval_set"]
    return {f"{name} ({wnid})": wnid for wnid, name in zip(data.wnids, data.names)}


def chosen_classes() -> list[str]:
    return list(st.session_state.get("classes", []))


def session_keep_mask() -> torch.Tensor:
    space = st.session_state["ckpt"].model.components
    if "keep" not in st.session_state or len(st.session_state["keep"]) != len(space):
        st.session_state["keep"] = space.ones()
    return st.session_state["keep"]


def playground() -> Playground:
    """This session's engine over the shared model, rebuilt when the classes change."""
    apply_thread_share()  # fragments rerun without app.py
    ckpt, eval_set = st.session_state["ckpt"], st.session_state["eval_set"]
    pg = st.session_state.get("playground")
    if pg is None or pg.base is not ckpt.model or pg.eval_set is not eval_set:
        logits = shared_eval_logits(ckpt.model, eval_set, ckpt.sha256, st.session_state["data_key"])
        pg = Playground(ckpt.model, eval_set, chosen_classes(), base_logits=logits, latency_model=shared_latency_model(ckpt.model, ckpt.sha256))
        st.session_state["playground"] = pg
    elif pg.classes != chosen_classes():
        pg.set_classes(chosen_classes())
    return pg


def keep_of(result) -> torch.Tensor:
    """The component keep-set a result gives the Prune page: its kept components, or for an edge
    result the components that still reach the logits through its kept edges."""
    model = st.session_state["ckpt"].model
    if result.is_edge:
        return model.edges.alive_components(model.edges.mask_from_keep(result.kept or []))
    return model.components.mask_from_keep(result.kept or [])


def current_model():
    """The model the session currently has: pruned (and fine-tuned) or the full one."""
    mask = session_keep_mask()
    if mask.sum() == 0:
        return None
    return playground().model_for(mask)
