"""A TopK sparse autoencoder on one residual-stream site of a ViT (Gao et al. 2024, "Scaling and evaluating
sparse autoencoders"), with its safetensors file format.

The SAE reads the residual stream entering block ``layer`` (TransformerLens's ``blocks.L.hook_resid_pre``) at
every token. Inputs are scaled by a fixed ``scale`` so their mean squared norm is the width ``d_in`` (the same
loss weight at every layer); ``encode`` and ``decode`` take and give the model's own units.

    z     = TopK(ReLU(W_enc (x * scale - b_dec) + b_enc))
    x_hat = (z W_dec + b_dec) / scale            (rows of W_dec have unit norm)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from ..errors import VitcoreError

FORMAT = "vitcore-topk-sae/1"
MAX_FILE_BYTES = 256 * 2**20
MAX_LATENTS = 1 << 18


class SAEError(VitcoreError):
    """An SAE file that is not one, does not fit its own config, or belongs to another model or site."""


@dataclass(frozen=True)
class SAEConfig:
    """What an SAE is: its site, its width, its sparsity and the model it was trained on."""

    layer: int
    d_in: int
    n_latents: int
    k: int
    scale: float = 1.0
    model_sha256: str = ""
    site: str = "resid_pre"

    def __post_init__(self) -> None:
        for name in ("layer", "d_in", "n_latents", "k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "layer" else 1):
                raise SAEError(
                    f"invalid SAE config: {name} must be a {'non-negative' if name == 'layer' else 'positive'} "
                    f"integer, got {value!r}"
                )
        if self.n_latents > MAX_LATENTS:
            raise SAEError(f"invalid SAE config: {self.n_latents} latents, over the limit of {MAX_LATENTS}")
        if self.k > self.n_latents:
            raise SAEError(f"invalid SAE config: k={self.k} is more than its {self.n_latents} latents")
        if not isinstance(self.scale, (int, float)) or not (0 < float(self.scale) < 1e6):
            raise SAEError(f"invalid SAE config: scale must be a positive number, got {self.scale!r}")
        if self.site != "resid_pre":
            raise SAEError(f"invalid SAE config: unknown site {self.site!r} (this version reads resid_pre)")

    @property
    def name(self) -> str:
        """A short label, e.g. ``L4 resid (1536 latents, k=32)``."""
        return f"L{self.layer} resid ({self.n_latents} latents, k={self.k})"


class TopKSAE(nn.Module):
    """A TopK sparse autoencoder; ``forward`` gives the reconstruction, ``encode`` the latents."""

    def __init__(self, config: SAEConfig):
        super().__init__()
        self.config = config
        n, d = config.n_latents, config.d_in
        self.W_enc = nn.Parameter(torch.empty(n, d))
        self.b_enc = nn.Parameter(torch.zeros(n))
        self.W_dec = nn.Parameter(torch.empty(n, d))
        self.b_dec = nn.Parameter(torch.zeros(d))
        if not self.W_enc.is_meta:
            nn.init.kaiming_uniform_(self.W_dec, a=5**0.5)
            self.normalize_decoder()
            with torch.no_grad():
                self.W_enc.copy_(self.W_dec)  # tied start (Gao et al.), untied while training

    @property
    def k(self) -> int:
        return self.config.k

    def pre_activations(self, x: Tensor) -> Tensor:
        """The encoder's output before ReLU and TopK, ``[..., n_latents]``, from the model's residual ``x``."""
        return (x * self.config.scale - self.b_dec) @ self.W_enc.T + self.b_enc

    def sparsify(self, pre: Tensor) -> Tensor:
        """The ``k`` largest of ``ReLU(pre)`` kept, every other latent zero."""
        top = torch.topk(torch.relu(pre), self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)

    def encode(self, x: Tensor) -> Tensor:
        """Latent activations ``[..., n_latents]`` (at most ``k`` non-zero per token)."""
        return self.sparsify(self.pre_activations(x))

    def decode(self, z: Tensor) -> Tensor:
        """The residual (model units) that latents ``z`` write."""
        return (z @ self.W_dec + self.b_dec) / self.config.scale

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def directions(self) -> Tensor:
        """Each latent's decoder direction in model units, ``[n_latents, d_in]`` (what one unit of it adds)."""
        return self.W_dec / self.config.scale

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Give every decoder row unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_gradient(self) -> None:
        """Drop the part of the decoder's gradient along its rows (it would only change their norms)."""
        if self.W_dec.grad is not None:
            along = (self.W_dec.grad * self.W_dec).sum(dim=1, keepdim=True)
            self.W_dec.grad.sub_(along * self.W_dec)

    def save(self, path: str | Path, dtype: torch.dtype = torch.float32) -> None:
        """Write the SAE as safetensors (``dtype``: float32, or float16 to ship at half the size), its config in
        the header; it loads back as float32."""
        state = {k: v.detach().to(dtype).contiguous() for k, v in self.state_dict().items()}
        meta = {"format": FORMAT, "config": json.dumps(asdict(self.config))}
        save_file(state, str(path), metadata=meta)


def topk_loss(
    sae: TopKSAE,
    x: Tensor,
    dead: Tensor | None = None,
    k_aux: int = 0,
    aux_coef: float = 1 / 32,
    weights: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The training loss on residuals ``x`` ``[N, d_in]``: the mean squared error of the reconstruction in
    scaled units, plus ``aux_coef`` times the AuxK error (the ``k_aux`` largest pre-activations of the
    latents marked ``dead`` predicting what the reconstruction missed). ``weights`` ``[N]`` weigh the tokens'
    squared errors (a weighted mean; None: all equal). Returns ``(loss, latents)``.
    """
    xs = x * sae.config.scale
    pre = sae.pre_activations(x)
    top = torch.topk(torch.relu(pre), sae.k, dim=-1)
    # the decoder reads only the k kept rows per token (a sparse sum, the same value as z @ W_dec)
    recon = F.embedding_bag(top.indices, sae.W_dec, per_sample_weights=top.values, mode="sum") + sae.b_dec
    z = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
    residual = xs - recon
    if weights is None:
        loss = residual.square().mean()
    else:
        loss = (residual.square().mean(-1) * weights).sum() / weights.sum()
    if dead is not None and k_aux > 0 and bool(dead.any()):
        candidates = torch.relu(pre) - z  # the latents TopK did not keep
        candidates = candidates.masked_fill(~dead, 0.0)
        aux = torch.topk(candidates, min(k_aux, int(dead.sum())), dim=-1)
        aux_recon = F.embedding_bag(aux.indices, sae.W_dec, per_sample_weights=aux.values, mode="sum")
        loss = loss + aux_coef * (residual.detach() - aux_recon).square().mean()
    return loss, z


def _read_header(path: Path) -> tuple[SAEConfig, dict[str, tuple[int, ...]]]:
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise SAEError(f"{path}: not an SAE file (not safetensors: {str(e).splitlines()[0][:160]})") from None
    if meta.get("format") != FORMAT:
        raise SAEError(f"{path}: not an SAE file of this app (format {meta.get('format')!r}, expected {FORMAT!r})")
    try:
        raw = json.loads(meta.get("config", ""))
        config = SAEConfig(**raw) if isinstance(raw, dict) else None
    except (json.JSONDecodeError, TypeError) as e:
        raise SAEError(f"{path}: the SAE's config is malformed ({e})") from None
    if config is None:
        raise SAEError(f"{path}: the SAE's config is not a JSON object")
    return config, shapes


def read_config(path: str | Path) -> SAEConfig:
    """The config in an SAE file's header, without reading its tensors (refused in one line if not an SAE)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
        raise SAEError(f"{path}: no SAE file there, or over the limit of {MAX_FILE_BYTES:,} bytes")
    return _read_header(path)[0]


def load_sae(
    path: str | Path, model_dim: int | None = None, model_depth: int | None = None, model_sha256: str | None = None
) -> TopKSAE:
    """An SAE from its file, refused in one line when it is not one, its tensors do not fit its config, or it
    was trained for another model (width, depth or weights' digest differ from the ones given)."""
    path = Path(path)
    if not path.is_file():
        raise SAEError(f"{path}: no such SAE file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise SAEError(f"{path}: {path.stat().st_size:,} bytes, over the SAE file limit of {MAX_FILE_BYTES:,}")
    config, shapes = _read_header(path)
    n, d = config.n_latents, config.d_in
    expected = {"W_enc": (n, d), "b_enc": (n,), "W_dec": (n, d), "b_dec": (d,)}
    if shapes != expected:
        raise SAEError(f"{path}: its tensors {shapes} do not fit its config ({n} latents of width {d})")
    if model_dim is not None and d != model_dim:
        raise SAEError(f"{path}: this SAE reads a residual of width {d}; the model's is {model_dim}")
    if model_depth is not None and config.layer >= model_depth:
        raise SAEError(f"{path}: this SAE reads layer {config.layer}; the model has {model_depth} layers")
    if model_sha256 and config.model_sha256 and config.model_sha256 != model_sha256:
        raise SAEError(
            f"{path}: this SAE was trained on another model (weights {config.model_sha256[:12]}, this model's "
            f"{model_sha256[:12]}); train one for it with `python -m vitcore features train`"
        )
    with torch.device("meta"):
        sae = TopKSAE(config)
    from safetensors.torch import load_file

    state = load_file(str(path))
    if not all(torch.isfinite(t).all() for t in state.values()):
        raise SAEError(f"{path}: the SAE holds non-finite weights")
    sae.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    return sae.eval()
