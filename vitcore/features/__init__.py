"""Features: sparse autoencoders on a ViT's residual stream, what their latents see and push, and edits of
them (:mod:`.sae`, :mod:`.train`, :mod:`.quality`, :mod:`.activations`)."""
