"""Resources shared by every session of the server (``st.cache_resource``): read-only by contract."""

from __future__ import annotations

import hashlib
import io
import os

import streamlit as st
import torch

from ui.streamlit_private import session_connected
from vitcore import load_split
from vitcore.checkpoint import Checkpoint, parse_checkpoint
from vitcore.compute import Scheduler
from vitcore.compute.figures import Source
from vitcore.compute.workers import WorkerPool
from vitcore.data import ImageSet, cache_dir
from vitcore.image_folder import load_data
from vitcore.model_sources import load_model, read_zip
from vitcore.threadshare import ThreadShare, available_cores


def _frozen(ckpt: Checkpoint) -> Checkpoint:
    for p in ckpt.model.parameters():
        p.requires_grad_(False)
    return ckpt


@st.cache_resource(show_spinner="Loading model…")
def shared_checkpoint(path: str | None) -> Checkpoint:
    """One model per source (a checkpoint path, a local timm folder or ``timm:NAME``; see ``vitcore.load_model``),
    shared by every session: read-only by contract."""
    return _frozen(load_model(path))


@st.cache_resource(show_spinner="Loading model…", max_entries=4, ttl=3600)
def shared_uploaded_checkpoint(digest: str, weights: bytes, config: bytes, kind: str) -> tuple[Checkpoint, str]:
    """A checked upload (a vitcore checkpoint, or a timm folder zipped) and the folder it is saved in, so that
    worker processes can load it too."""
    checked = parse_checkpoint(weights, config, "uploaded checkpoint") if kind == "checkpoint" else None
    folder = cache_dir() / "uploads" / digest
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_bytes(config)
    # a timm model is built by timm from the saved folder, its architecture and size checked first
    return _frozen(checked or load_model(folder)), str(folder)


def load_upload(upload) -> tuple[Checkpoint, str]:
    """An uploaded checkpoint zip or zipped timm folder, loaded once per content and shared (its sizes are checked
    before anything inflates), and the folder it is saved in."""
    data = upload.getvalue()
    weights, config, kind = read_zip(io.BytesIO(data), f"'{upload.name}'")
    return shared_uploaded_checkpoint(hashlib.sha256(data).hexdigest(), weights, config, kind)


@st.cache_resource(show_spinner="Loading images…")
def shared_split(path: str | None, split: str) -> ImageSet:
    return load_split(path, split)


@st.cache_resource(show_spinner="Loading images…", max_entries=8)
def shared_data(path: str | None, _ckpt: Checkpoint, model_sha: str, split: str) -> ImageSet:
    """A split of the data at ``path`` for a model (Tiny ImageNet, or a labelled image folder preprocessed for it)."""
    return load_data(path, _ckpt, split)


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
    return ThreadShare(int(os.environ.get("VITCORE_APP_CORES", "0")) or None, is_connected=session_connected)


WORKER_NICE = 5  # the figure workers yield the CPU to the server process, which draws every session's pages


def compute_workers() -> int:
    """Worker processes for the figures (``VITCORE_APP_WORKERS``; default one per core, 0: jobs run in the server
    process).
    """
    value = os.environ.get("VITCORE_APP_WORKERS")
    return available_cores() if value is None else max(0, int(value))


@st.cache_resource(show_spinner=False)
def shared_scheduler() -> Scheduler:
    """The one scheduler of every session's jobs: on worker processes here, or on a Ray cluster when
    ``VITCORE_APP_RAY`` names one (``local``: a Ray on this machine); see docs: sizing for a class."""
    ray_address = os.environ.get("VITCORE_APP_RAY")
    if ray_address:
        from vitcore.compute.ray_pool import RayPool

        pool = RayPool(None if ray_address == "local" else ray_address, compute_workers() or None)
        return Scheduler(pool, slots=pool.processes)
    workers = compute_workers()
    if workers == 0:
        return Scheduler(slots=1)
    return Scheduler(WorkerPool(workers, nice=WORKER_NICE), slots=workers)


def shipped_source() -> Source:
    ckpt = shared_checkpoint(None)
    return Source(None, ckpt.sha256, None, "bundled")


def state_hash(model: torch.nn.Module) -> str:
    """A digest of a model's weights (``vitcore.compute.long_jobs.weights_digest``)."""
    from vitcore.compute.long_jobs import weights_digest

    return weights_digest(model)
