"""The Model page's gallery: eval images with the model's predictions as one HTML grid, shared by every session."""

import base64
import html
import io

import streamlit as st
import torch
from PIL import Image

from vitcore.data import ImageSet
from vitcore.evaluate import predict_logits
from vitcore.model import VisionTransformer

GALLERY_SIZE = 32
# marks drawn by CSS (a coloured badge with a plain letter), not emoji: a machine without an emoji font draws emoji
# as empty boxes
RIGHT = (
    '<span title="right" style="background:#1a7f37;color:white;border-radius:3px;padding:0 3px;'
    'font-weight:bold">right</span>'
)
WRONG = (
    '<span title="wrong" style="background:#cf222e;color:white;border-radius:3px;padding:0 3px;'
    'font-weight:bold">wrong</span>'
)


def png_data_uri(image: torch.Tensor) -> str:
    """A uint8 [3, H, W] image as an inline PNG."""
    buf = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@st.cache_resource(max_entries=32, show_spinner=False)
def gallery_html(
    _model: VisionTransformer,
    _eval_set: ImageSet,
    model_sha: str,
    data_key: str,
    shown: tuple[int, ...],
    _logits: torch.Tensor | None = None,
) -> str:
    """The eval images ``shown`` with the model's predictions (from ``_logits`` when given), as one grid;
    computed once per model, data set and selection (the default view is every session's first page)."""
    index = torch.tensor(shown, dtype=torch.long)
    pred = (
        _logits[index].argmax(1) if _logits is not None else predict_logits(_model, _eval_set.images[index]).argmax(1)
    )
    cells = []
    for i, p in zip(shown, pred.tolist()):
        mark = RIGHT if p == _eval_set.labels[i] else WRONG
        cells.append(
            f'<figure style="margin:0"><img class="gallery" alt="eval image {i}" '
            f'src="{png_data_uri(_eval_set.images[i])}" '
            f'style="width:100%;image-rendering:pixelated"><figcaption style="font-size:0.8em">{mark} '
            f"{html.escape(_eval_set.names[_eval_set.labels[i]])} → "
            f"{html.escape(_eval_set.names[p])}</figcaption></figure>"
        )
    return '<div style="display:grid;grid-template-columns:repeat(8,1fr);gap:10px">' + "".join(cells) + "</div>"
