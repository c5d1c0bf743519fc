"""This session's evaluation engine over the shared model, and the models a session works with."""

from __future__ import annotations

import torch

from ui.resources import shared_eval_logits, shared_latency_model, shared_scheduler, shared_thread_share
from ui.state import AppState
from ui.streamlit_private import script_session_id
from vitcore.circuits.result import CircuitResult
from vitcore.model import VisionTransformer
from vitcore.playground import Playground


def apply_thread_share(state: AppState) -> int:
    """Limit this run's torch threads to the session's share of the cores, so one user cannot starve the others."""
    state.torch_threads = shared_thread_share().apply(script_session_id() or state.session_uid)
    return state.torch_threads


def playground(state: AppState) -> Playground:
    """This session's engine over the shared model, rebuilt when the model or data changes."""
    apply_thread_share(state)  # fragments rerun without app.py
    ckpt, eval_set = state.ckpt, state.eval_set
    pg = state.playground
    if pg is None or pg.base is not ckpt.model or pg.eval_set is not eval_set:
        logits = shared_eval_logits(ckpt.model, eval_set, ckpt.sha256, state.data_key)
        pg = Playground(
            ckpt.model,
            eval_set,
            state.classes,
            base_logits=logits,
            latency_model=shared_latency_model(ckpt.model, ckpt.sha256),
            scheduler=shared_scheduler(),
            source=state.source(),
            session=state.session_uid,
        )
        state.playground = pg
    elif pg.classes != state.classes:
        pg.set_classes(state.classes)
    return pg


def keep_of(state: AppState, result: CircuitResult) -> torch.Tensor:
    """The component keep-set a result gives the Prune page: its kept components, or for an edge
    result the components that still reach the logits through its kept edges."""
    model = state.ckpt.model
    if result.is_edge:
        return model.edges.alive_components(model.edges.mask_from_keep(result.kept or []))
    return model.components.mask_from_keep(result.kept or [])


def current_model(state: AppState) -> VisionTransformer | None:
    """The model the session currently has: pruned (and fine-tuned) or the full one; None when nothing is kept."""
    mask = state.keep_mask()
    if mask.sum() == 0:
        return None
    return playground(state).model_for(mask)
