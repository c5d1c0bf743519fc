"""The Features page's shared, read-only resources: the SAEs of a model and their feature indexes."""

from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path

import streamlit as st

from vitcore.checkpoint import Checkpoint
from vitcore.data import ImageSet
from vitcore.features.sae import TopKSAE, load_sae
from vitcore.features.view import FeatureIndex, build_index


def _frozen(sae: TopKSAE) -> TopKSAE:
    for p in sae.parameters():
        p.requires_grad_(False)
    return sae


@st.cache_resource(show_spinner="Loading the sparse autoencoder…", max_entries=8)
def shared_sae(path: str, _ckpt: Checkpoint, model_sha: str) -> TopKSAE:
    """A shipped SAE for the model with these weights, shared by every session: read-only by contract."""
    model = _ckpt.model
    return _frozen(load_sae(path, model.config.dim, len(model.blocks), model_sha))


@st.cache_resource(show_spinner="Loading the sparse autoencoder…", max_entries=4, ttl=3600)
def shared_uploaded_sae(digest: str, data: bytes, _ckpt: Checkpoint, model_sha: str) -> TopKSAE:
    """An uploaded SAE file, checked like a shipped one (refused in one line if it is not for this model)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "uploaded.safetensors"
        path.write_bytes(data)
        model = _ckpt.model
        return _frozen(load_sae(path, model.config.dim, len(model.blocks), model_sha))


def load_uploaded_sae(upload, ckpt: Checkpoint) -> TopKSAE:
    data = upload.getvalue() if isinstance(upload, io.BytesIO) or hasattr(upload, "getvalue") else bytes(upload)
    return shared_uploaded_sae(hashlib.sha256(data).hexdigest(), data, ckpt, ckpt.sha256)


@st.cache_resource(show_spinner="Finding where every feature fires on the eval images…", max_entries=8)
def shared_index(sae_key: str, data_key: str, _ckpt: Checkpoint, _sae: TopKSAE, _data: ImageSet) -> FeatureIndex:
    """Every latent's strongest activation per eval image (one pass of the model), shared by every session."""
    return build_index(_ckpt.model, _sae, _data)
