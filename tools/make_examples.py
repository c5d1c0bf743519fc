"""Write the example images of the Model page's "Try your own image" (assets/examples/), from the full val split.

Run: python tools/make_examples.py ../shared/data/tiny-imagenet-200.zip
Picks val images outside the bundled subset: five the shipped model gets right and one it gets wrong, each of
another class, plus the first of them with the planted shortcut's mark (try it with the Shortcut model).
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vitcore import load_checkpoint, load_split  # noqa: E402
from vitcore.evaluate import predict_logits  # noqa: E402
from vitcore.shortcut import apply_mark, shortcut_of  # noqa: E402

OUT = ROOT / "assets" / "examples"
CLASSES = ("n02123045", "n01443537", "n02504458", "n04487081", "n07749582", "n02437312")  # tabby, goldfish, ...


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("data")
    args = p.parse_args()
    val, bundled = load_split(args.data, "val"), load_split(None, "val")
    inside = set(bundled.files)
    pred = predict_logits(load_checkpoint().model, val.images).argmax(1)
    picked, wrong_taken = [], False
    for wnid in CLASSES:
        c = val.class_index(wnid)
        candidates = [i for i in range(len(val)) if val.labels[i] == c and val.files[i] not in inside]
        right = [i for i in candidates if pred[i] == c]
        wrong = [i for i in candidates if pred[i] != c]
        if not wrong_taken and wnid == CLASSES[-1] and wrong:
            picked.append(wrong[0])
            wrong_taken = True
        else:
            picked.append(right[0])
    OUT.mkdir(parents=True, exist_ok=True)
    listing = []
    for i in picked:
        name = val.names[int(val.labels[i])].split(",")[0].replace(" ", "_") + ".png"
        Image.fromarray(val.images[i].permute(1, 2, 0).numpy()).save(OUT / name)
        listing.append({"file": name, "source": val.files[i], "class": val.wnids[int(val.labels[i])]})
    shortcut = shortcut_of(load_checkpoint(ROOT / "assets" / "shortcut").info)
    if shortcut is not None:
        first = picked[0]
        marked = apply_mark(val.images[first], shortcut.mark)
        name = listing[0]["file"].replace(".png", "_with_the_square.png")
        Image.fromarray(marked.permute(1, 2, 0).numpy()).save(OUT / name)
        listing.append({"file": name, "source": val.files[first], "class": listing[0]["class"], "marked": True})
    (OUT / "examples.json").write_text(json.dumps(listing, indent=1) + "\n")
    print(f"wrote {len(listing)} examples to {OUT}")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
