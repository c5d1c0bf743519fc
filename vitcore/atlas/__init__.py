"""A circuit atlas: every class's circuit by each method, run as independent tasks (Ray or one process)."""

from .analysis import Atlas, cluster_order, load_atlas, similarity, union_circuit, usage
from .run import AtlasRun, AtlasSettings, AtlasTask, run_atlas, solve

__all__ = [
    "Atlas",
    "AtlasRun",
    "AtlasSettings",
    "AtlasTask",
    "cluster_order",
    "load_atlas",
    "run_atlas",
    "similarity",
    "solve",
    "union_circuit",
    "usage",
]
