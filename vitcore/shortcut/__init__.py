"""A planted shortcut: the mark, the model that learns it, the task that finds its circuit and the cut."""

from .figures import shortcut_figures
from .mark import CORNERS, Mark, Shortcut, ShortcutError, apply_mark
from .plant import PlantConfig, plant, shortcut_of
from .task import build_mark_task

__all__ = [
    "CORNERS",
    "Mark",
    "PlantConfig",
    "Shortcut",
    "ShortcutError",
    "apply_mark",
    "build_mark_task",
    "plant",
    "shortcut_figures",
    "shortcut_of",
]
