"""The script every exported zip carries: top-5 classes of an image with onnxruntime, numpy and Pillow only.

It prepares an image with the lines of :mod:`vitcore.pil_preprocess`, copied in: the same crop, resize filter and
transparency handling as the app, and the model's own normalisation from the exported config.
"""

from pathlib import Path

from .. import pil_preprocess

_SHARED = Path(pil_preprocess.__file__).read_text().split("# --- predict.py: copied from here ---\n", 1)[1]

PREDICT_PY = (
    '''\
"""Top-5 classes of an image with this model (onnxruntime, numpy and Pillow; no torch, no vitcore).

Run beside model.onnx and config.json:  python predict.py IMAGE
The image is prepared as the app prepares it (see config.json's "model" and "preprocessing").
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

'''
    + _SHARED
    + """

here = Path(__file__).resolve().parent
config = json.loads((here / "config.json").read_text())
m, names = config["model"], config["classes"]["names"]
image = Image.open(sys.argv[1])
if image.width * image.height > 40_000_000:  # as the app: refused before it is decoded
    sys.exit(f"{sys.argv[1]}: over 40,000,000 pixels (possible decompression bomb)")
image = model_input(as_rgb(image), m["image_size"], config.get("preprocessing"))
pixels = (np.asarray(image, dtype=np.float32) / 255.0 - np.float32(m["mean"])) / np.float32(m["std"])
session = ort.InferenceSession(str(here / "model.onnx"), providers=["CPUExecutionProvider"])
logits = session.run(["logits"], {"pixels": pixels.transpose(2, 0, 1)[None]})[0][0]
for i in np.argsort(-logits)[:5]:
    print(f"{logits[i]:10.4f}  {names[i]}")
"""
)
