"""Physical pruning, exact cost counts, measured latency, recovery fine-tuning, export and sweeps."""

from .counts import count_macs, count_params
from .prune import PruneError, keep_mask, prune

__all__ = ["PruneError", "count_macs", "count_params", "keep_mask", "prune"]
