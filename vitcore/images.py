"""Safe decoding of untrusted image bytes into the RGB 64x64 input the model sees."""

from __future__ import annotations

import io
import warnings
from typing import Any

from PIL import Image, UnidentifiedImageError

from .errors import VitcoreError
from .pil_preprocess import as_rgb, model_input

MAX_PIXELS = 40_000_000  # far above any photo a user would try, far below a decompression bomb
MAX_ASPECT = 16  # a 100,000 x 1 strip would otherwise resize (shorter side to 64) to 6,400,000 x 64


class ImageError(VitcoreError):
    """Bytes that are not a decodable, reasonably sized image."""


def load_rgb(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``data`` to an RGB PIL image; refuses non-images, truncated files and bombs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(
                    f"{name}: {w}x{h} pixels is over the limit of {max_pixels:,} (possible decompression bomb)"
                )
            if min(w, h) < 1 or max(w, h) > MAX_ASPECT * min(w, h):
                raise ImageError(
                    f"{name}: {w}x{h} is too elongated (aspect ratio over {MAX_ASPECT}:1) to be a photo the model can "
                    "use"
                )
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{name}: refused as a possible decompression bomb ({e})") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{name}: not an image file Pillow can read") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: damaged or truncated image ({e})") from e
    return as_rgb(img)


def to_model_size(img: Image.Image, size: int = 64, preprocessing: dict[str, Any] | None = None) -> Image.Image:
    """The ``size`` x ``size`` image the model sees (:func:`vitcore.pil_preprocess.model_input`; ``preprocessing``:
    a checkpoint's timm eval transform, if it records one)."""
    w, h = img.size
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageError(f"{w}x{h} is too elongated (aspect ratio over {MAX_ASPECT}:1)")
    return model_input(img, size, preprocessing)
