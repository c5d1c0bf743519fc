"""Physical pruning, exact cost counts, measured latency, recovery fine-tuning, export and sweeps."""

from .counts import count_macs, count_params
from .prune import PruneError, prune, to_keep_mask

__all__ = ["PruneError", "count_macs", "count_params", "prune", "to_keep_mask"]
