"""A session's work on each model and data set it has used: kept while it looks at another model, back when it
returns to this one."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from ..circuits.result import CircuitResult


@dataclass
class Workspace:
    """What a session computed or chose for one model and data set: its keep-set, circuit results, the
    configurations it tried, its fine-tune, sweep, deployment table, exports and its figure engine."""

    keep: Tensor | None = None
    results: list[CircuitResult] = field(default_factory=list)
    active_result: int | None = None
    history: dict[bytes, dict] = field(default_factory=dict)  # the Prune page's configurations tried
    finetuned: bytes | None = None  # the keep-set whose model is the fine-tuned one now
    fine_tune: Any = None
    attribution: Any = None  # the Circuits page's last explanation maps
    exports: dict[str, bytes] = field(default_factory=dict)  # the Export page's files for ``exports_key``
    exports_key: tuple | None = None  # the model they were made from (keep-set, fine-tune)
    deploy_rows: tuple[tuple, list[dict]] | None = None  # (model key, the deployment table measured for it)
    sweep_rows: list[dict] | None = None
    fine_tune_settings: list = field(default_factory=list)  # vitcore.session.snapshot.FineTuneSettings, oldest first
    playground: Any = None  # the session's figure engine over this model (rebuilt when absent)


class Workspaces:
    """A session's workspaces by model and data, the ``limit`` most recently used (an older one is dropped, with
    what it held)."""

    def __init__(self, limit: int = 4):
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self._by_key: OrderedDict[Hashable, Workspace] = OrderedDict()

    def open(self, key: Hashable) -> Workspace:
        """The workspace of ``key`` (a model's digest and its data), new when there is none."""
        work = self._by_key.pop(key, None) or Workspace()
        self._by_key[key] = work
        while len(self._by_key) > self.limit:
            self._by_key.popitem(last=False)
        return work

    def put(self, key: Hashable, work: Workspace) -> None:
        """Use ``work`` as the workspace of ``key`` (a saved one, brought back), as the most recently used."""
        self._by_key.pop(key, None)
        self._by_key[key] = work
        while len(self._by_key) > self.limit:
            self._by_key.popitem(last=False)

    def items(self) -> list[tuple[Hashable, Workspace]]:
        """(key, workspace), the least recently used first."""
        return list(self._by_key.items())

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._by_key


class InWorkspace:
    """An attribute of an object that lives on the object's current ``work`` (a :class:`Workspace`)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(obj.work, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj.work, self.name, value)
