"""Safe decoding of untrusted image bytes into the RGB 64x64 input the model sees."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from .errors import VitcoreError

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
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        img = img.point(lambda v: v / 256) if img.mode != "F" else img
        img = img.convert("L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def to_model_size(img: Image.Image, size: int = 64) -> Image.Image:
    """Resize the shorter side to ``size`` and center-crop, as the model sees an upload."""
    w, h = img.size
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageError(f"{w}x{h} is too elongated (aspect ratio over {MAX_ASPECT}:1)")
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return img.crop((left, top, left + size, top + size))
