"""One typed object holds a session's state; what a change of model or data invalidates is decided here.

Widgets keep their values under their own keys in ``st.session_state`` (Streamlit needs that); everything
else a page reads or writes about the session lives on :class:`AppState`, stored under one key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import streamlit as st
import torch

from vitcore.checkpoint import Checkpoint
from vitcore.circuits.result import CircuitResult
from vitcore.compute.figures import Source
from vitcore.data import ImageSet
from vitcore.session import InWorkspace, Workspace, Workspaces

STATE_KEY = "app"


@dataclass
class FineTuned:
    """A fine-tuning run of one keep-set: both models, the loss curve and their figures."""

    key: bytes
    models: dict[str, torch.nn.Module]  # "before fine-tuning", "fine-tuned"
    losses: list[float]
    figures: dict[str, Any]
    message: str


@dataclass(frozen=True)
class Chosen:
    """The model and data a session uses, chosen together in the sidebar."""

    ckpt: Checkpoint
    discovery: ImageSet
    eval_set: ImageSet


@dataclass
class AppState:
    """What one browser session holds: the model and data it uses, its classes, keep-set, results and copies."""

    session_uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    chosen: Chosen | None = None  # the model and data in use: set by the sidebar before any page draws
    checkpoint_path: str | None = None  # where worker processes load it (None: the shipped model)
    data_key: str = "bundled"
    classes: list[str] = field(default_factory=list)
    keep_version: int = 0  # bumped by every change of ``keep``: the Prune page's grid resyncs when it moves
    workspaces: Workspaces = field(default_factory=Workspaces)
    work: Workspace = field(default_factory=Workspace)  # the workspace of the model and data in use
    ft_seconds_per_step: float | None = None  # measured on this session's last fine-tune
    forward_probe: tuple[tuple, float] | None = None
    torch_threads: int | None = None
    slider_values: dict[str, Any] = field(
        default_factory=dict
    )  # the Prune page's sliders, kept while another page is open
    running: set[str] = field(default_factory=set)  # long runs in progress (a Stop leaves its name here)
    shortcut_method: str | None = None  # the method whose circuit of the planted shortcut the Shortcut page shows
    token: str | None = None  # the URL's key to this session's saved work (ui/persist.py); "": nothing is kept
    saved_digest: str | None = None  # of the work last saved
    persist_problem: str | None = None  # why the last save failed
    result_json: dict[int, tuple[Any, str]] = field(default_factory=dict)  # circuit results' JSON, made once
    try_image_last: str = "example"  # the Model page's image input changed last: "upload" or "example"
    fine_tune_shown: tuple | None = None  # the keep-set whose saved fine-tune settings the Prune page's widgets hold

    # the session's work on the model and data in use (vitcore.session.Workspace): kept when another model is
    # chosen, back when this one is chosen again
    keep = InWorkspace()
    results = InWorkspace()
    active_result = InWorkspace()
    playground = InWorkspace()
    history = InWorkspace()
    finetuned = InWorkspace()
    fine_tune = InWorkspace()
    attribution = InWorkspace()
    exports = InWorkspace()
    exports_key = InWorkspace()
    deploy_rows = InWorkspace()
    sweep_rows = InWorkspace()
    fine_tune_settings = InWorkspace()

    # --- model and data -------------------------------------------------------------------------------------
    def use(
        self,
        ckpt: Checkpoint,
        discovery: ImageSet,
        eval_set: ImageSet,
        data_key: str,
        checkpoint_path: str | None = None,
    ) -> None:
        """Set the model and data; another model or data set opens its own workspace (the one this session left
        there, if any), and the current one waits for the session to come back."""
        changed = self.chosen is None or self.chosen.ckpt.sha256 != ckpt.sha256 or self.data_key != data_key
        self.chosen, self.data_key = Chosen(ckpt, discovery, eval_set), data_key
        self.checkpoint_path = checkpoint_path
        if changed:
            self.work = self.workspaces.open((ckpt.sha256, data_key))
            self.keep_version += 1
        if self.classes and eval_set is not None:
            self.classes = [w for w in self.classes if w in eval_set.wnids]

    @property
    def ckpt(self) -> Checkpoint:
        return self._chosen().ckpt

    @property
    def discovery(self) -> ImageSet:
        return self._chosen().discovery

    @property
    def eval_set(self) -> ImageSet:
        return self._chosen().eval_set

    def _chosen(self) -> Chosen:
        if self.chosen is None:
            raise RuntimeError("no model chosen yet: a page calls ui.shell.open_page() first")
        return self.chosen

    # --- keep-set -------------------------------------------------------------------------------------------
    def keep_mask(self) -> torch.Tensor:
        """The session's keep-set (every component at first)."""
        space = self.ckpt.model.components
        if self.keep is None or len(self.keep) != len(space):
            self.keep = space.ones()
        return self.keep

    def set_keep(self, mask: torch.Tensor) -> None:
        self.keep = mask.float()
        self.keep_version += 1

    # --- circuit results ------------------------------------------------------------------------------------
    def add_result(self, result: CircuitResult) -> None:
        self.results.append(result)
        self.active_result = len(self.results) - 1

    def active_index(self) -> int | None:
        """The index of the result the Prune and Export pages work from (the newest unless another was picked)."""
        if not self.results:
            return None
        ok = self.active_result is not None and 0 <= self.active_result < len(self.results)
        return self.active_result if ok else len(self.results) - 1

    def active(self) -> CircuitResult | None:
        i = self.active_index()
        return None if i is None else self.results[i]

    # --- derived ----------------------------------------------------------------------------------------------
    def source(self) -> Source:
        """The model and eval data as files, for worker processes."""
        return Source(
            self.checkpoint_path, self.ckpt.sha256, None if self.data_key == "bundled" else self.data_key, self.data_key
        )

    def class_options(self) -> dict[str, str]:
        """Human-readable class label -> wnid, for searchable multiselects: the classes with discovery and eval
        images (an image folder may hold a few of a model's classes)."""
        present = set(self.eval_set.present())
        if self.discovery is not None:
            present &= set(self.discovery.present())
        return {
            f"{name} ({wnid})": wnid for wnid, name in zip(self.eval_set.wnids, self.eval_set.names) if wnid in present
        }

    def class_names(self) -> list[str]:
        return [self.eval_set.names[self.eval_set.class_index(w)] for w in self.classes]


def app_state() -> AppState:
    """This session's state (created on first use)."""
    state = st.session_state.get(STATE_KEY)
    if not isinstance(state, AppState):
        state = st.session_state[STATE_KEY] = AppState()
    return state
