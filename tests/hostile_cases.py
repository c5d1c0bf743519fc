"""Runs hostile inputs under an address-space cap, one case per line of output (used by test_hostile_inputs.py).

Usage: python hostile_cases.py WORKDIR. The cap is what the process holds after a normal load of the
shipped checkpoint and one image, plus twice what that normal load added (at least 256 MB, for
allocator noise): an input that makes the process allocate more fails with MemoryError.
"""

import io
import json
import resource
import sys
from pathlib import Path


def vm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def png(w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (w, h)).save(buf, "PNG")
    return buf.getvalue()


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that declares ``w`` x ``h`` pixels and holds a few bytes of them (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def main(work: Path) -> None:
    from vitcore.checkpoint import load_checkpoint, parse_checkpoint, read_zip_parts
    from vitcore.circuits.result import CircuitResult
    from vitcore.config import ViTConfig
    from vitcore.data import check_classes, load_split
    from vitcore.errors import VitcoreError, load_state_file
    from vitcore.image_folder import load_image_folder
    from vitcore.images import load_rgb, to_model_size
    from vitcore.model_sources import load_model

    try:  # imported before the cap, as the app has it loaded
        import timm  # noqa: F401
    except ImportError:
        pass

    shipped = Path(load_checkpoint.__module__ and __import__("vitcore.assets").assets.shipped_checkpoint())
    weights, config = (shipped / "model.safetensors").read_bytes(), json.loads((shipped / "config.json").read_text())
    start = vm_bytes()
    load_checkpoint(shipped)
    to_model_size(load_rgb(png(640, 480)))
    normal = max(vm_bytes() - start, 1)
    cap = vm_bytes() + max(2 * normal, 256 * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    def with_model(**changes):
        cfg = json.loads(json.dumps(config))
        cfg["model"].update(changes)
        return lambda: parse_checkpoint(weights, json.dumps(cfg).encode(), "crafted")

    def nested(depth: int) -> bytes:
        return b"[" * depth + b"]" * depth

    def bad_scores():
        names = [f"L0.H{i}" for i in range(3)]
        doc = {
            "schema": "vitcore.circuit-result",
            "version": 1,
            "method": "eap",
            "metric": "ce",
            "corruption": "resample",
            "classes": ["n0"],
            "n_images": 1,
            "seed": 0,
            "component_names": names,
            "scores": [0.1, 0.2, 0.3],
            "kept": ["L0.H0", "L5.H7"],
        }
        return CircuitResult.from_json(json.dumps(doc))

    def data_with(name: str, content: bytes):
        root = work / f"data-{name.replace('/', '-')}"
        (root / "val" / "images").mkdir(parents=True, exist_ok=True)
        (root / "wnids.txt").write_bytes(b"n01443537\n")
        (root / "val" / "val_annotations.txt").write_bytes(b"val_0.JPEG\tn01443537\t0\t0\t1\t1\n")
        (root / name).write_bytes(content)
        return lambda: load_split(root, "val", use_cache=False)

    def uploaded(name: str):  # what the app's sidebar does with an uploaded zip
        return lambda: parse_checkpoint(
            *read_zip_parts(io.BytesIO((work / name).read_bytes()), f"'{name}'"), "uploaded checkpoint"
        )

    def data_adding_a_class():
        root = work / "data-extra-class"
        (root / "val" / "images").mkdir(parents=True, exist_ok=True)
        wnids = shipped_wnids + ["n99999999"]
        (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
        (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn01443537\t0\t0\t1\t1\n")
        (root / "val" / "images" / "val_0.JPEG").write_bytes(png(64, 64))
        return lambda: check_classes(shipped_wnids, len(shipped_wnids), load_split(root, "val", use_cache=False))

    def image_folder_with(name: str, content: bytes):
        root = work / f"folder-{name}"
        (root / "n01443537").mkdir(parents=True, exist_ok=True)
        (root / "n01443537" / "0.png").write_bytes(png(64, 64))
        (root / "n01443537" / name).write_bytes(content)
        return lambda: load_image_folder(root, load_checkpoint(shipped))

    def timm_folder_asking_for(**model_args):
        root = work / "timm-huge"
        root.mkdir(exist_ok=True)
        doc = {"architecture": "vit_tiny_patch16_224", "model_args": model_args, "pretrained_cfg": {}}
        (root / "config.json").write_text(json.dumps(doc))
        (root / "model.safetensors").write_bytes(b"tiny")
        return lambda: load_model(root)

    shipped_wnids = config["classes"]["wnids"]
    cases = {
        "folder_image_1GiB": lambda: load_image_folder(work / "folder_bomb.zip", load_checkpoint(shipped)),
        "folder_png_40000x40000": image_folder_with("1.png", png_header_only(40_000, 40_000)),
        "timm_config_dim_1e6": timm_folder_asking_for(embed_dim=10**6, num_heads=1),
        "zip_bomb": lambda: load_checkpoint(work / "bomb.zip"),
        "upload_bomb_500MiB": uploaded("upload_bomb.zip"),
        "data_image_1GiB": lambda: load_split(work / "data_bomb.zip", "train", use_cache=False),
        "state_file_pickle": lambda: load_state_file(work / "state.pt"),
        "wnids_unknown_class": data_adding_a_class(),
        "heads_20000": with_model(heads=[20000] * 9),
        "dim_1e6": with_model(dim=10**6),
        "classes_1e10": with_model(num_classes=10**10),
        "dim_fraction": with_model(dim=192.5),
        "dim_nan": lambda: parse_checkpoint(
            weights, json.dumps(config).replace('"dim": 192', '"dim": NaN').encode(), "crafted"
        ),
        "head_dim_fraction": with_model(head_dim=16.5),
        "std_zero": with_model(std=[0, 0, 0]),
        "png_100000x1": lambda: to_model_size(load_rgb(png(100_000, 1), "strip.png")),
        "png_1000000x1": lambda: to_model_size(load_rgb(png(1_000_000, 1), "strip.png")),
        "nested_config": lambda: parse_checkpoint(weights, nested(100_000), "crafted"),
        "nested_scores": lambda: CircuitResult.from_json(nested(100_000)),
        "scores_unknown_kept": bad_scores,
        "wnids_not_utf8": data_with("wnids.txt", b"n0144\xff\xfe3537\n"),
        "annotations_not_utf8": data_with("val/val_annotations.txt", b"val_0.JPEG\tn01\xff443537\n"),
        "config_rejects_direct": lambda: ViTConfig(heads=[12] * 9, mlp_widths=[384] * 9, dim=float("nan")),
    }
    for name, fn in cases.items():
        try:
            fn()
            print(json.dumps({"case": name, "outcome": "accepted"}), flush=True)
        except VitcoreError as e:
            print(json.dumps({"case": name, "outcome": "refused", "message": str(e)}), flush=True)
        except MemoryError:
            print(json.dumps({"case": name, "outcome": "memory"}), flush=True)
        except Exception as e:  # a traceback-worthy failure is a bug: report its type
            print(
                json.dumps({"case": name, "outcome": "crash", "message": f"{type(e).__name__}: {e}"[:300]}), flush=True
            )
    print(json.dumps({"case": "_cap", "normal_bytes": normal, "cap_over_start": cap - start}), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
