"""How an RGB image becomes the model's input, with Pillow alone: the app's uploads and image folders and every
exported zip's ``predict.py`` prepare an image with these same lines (the export copies them into the script),
so that the download answers as the app does. Imports nothing but Pillow.
"""

from PIL import Image

# --- predict.py: copied from here ---
RESAMPLING = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def as_rgb(img):
    """The image in RGB: 16-bit and float grey scaled to 8 bits, transparency composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        img = img.point(lambda v: v / 256) if img.mode != "F" else img
        img = img.convert("L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def model_input(img, size, preprocessing=None):
    """A ``size`` x ``size`` centre crop: timm's eval transform when the model records one (shorter side to
    ``size / crop_pct``, as torchvision's Resize), otherwise the shorter side to ``size`` (bicubic)."""
    w, h = img.size
    if preprocessing:
        scaled = int(size / (float(preprocessing.get("crop_pct", 1.0)) or 1.0))
        longer = int(scaled * max(w, h) / min(w, h))
        resample = RESAMPLING.get(str(preprocessing.get("interpolation", "bicubic")), Image.Resampling.BICUBIC)
        img = img.resize((scaled, longer) if w <= h else (longer, scaled), resample)
        left, top = int(round((img.width - size) / 2.0)), int(round((img.height - size) / 2.0))
    else:
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
        left, top = (img.width - size) // 2, (img.height - size) // 2
    return img.crop((left, top, left + size, top + size))
