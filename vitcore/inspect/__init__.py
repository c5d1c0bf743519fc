"""Looking inside components: attention patterns, the logit lens, direct logit attribution and per-image effects.

Every function reads the model's configuration (image and patch size, depth, heads), so it serves any ViT the
library loads, and none changes the model it is given.
"""

from .attention import attention_patterns, mean_attention_distance
from .effects import ComponentEffect, image_effects, without_components
from .logits import LogitAttribution, direct_logit_attribution, logit_lens, residual_states

__all__ = [
    "ComponentEffect",
    "LogitAttribution",
    "attention_patterns",
    "direct_logit_attribution",
    "image_effects",
    "logit_lens",
    "mean_attention_distance",
    "residual_states",
    "without_components",
]
