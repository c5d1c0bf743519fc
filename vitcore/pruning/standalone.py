"""The script every exported zip carries: top-5 classes of an image with onnxruntime, numpy and Pillow only."""

PREDICT_PY = '''\
"""Top-5 classes of an image with this model (onnxruntime, numpy and Pillow; no torch, no vitcore).

Run beside model.onnx and config.json:  python predict.py IMAGE
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

here = Path(__file__).resolve().parent
config = json.loads((here / "config.json").read_text())
m, names = config["model"], config["classes"]["names"]
size = m["image_size"]
image = Image.open(sys.argv[1]).convert("RGB")
if image.size != (size, size):
    image = image.resize((size, size), Image.Resampling.BICUBIC)
pixels = (np.asarray(image, dtype=np.float32) / 255.0 - np.float32(m["mean"])) / np.float32(m["std"])
session = ort.InferenceSession(str(here / "model.onnx"), providers=["CPUExecutionProvider"])
logits = session.run(["logits"], {"pixels": pixels.transpose(2, 0, 1)[None]})[0][0]
for i in np.argsort(-logits)[:5]:
    print(f"{logits[i]:10.4f}  {names[i]}")
'''
