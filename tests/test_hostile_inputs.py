"""Crafted inputs of a few KB get a one-line error and never make the process allocate gigabytes.

All cases run in one subprocess under an address-space cap (see hostile_cases.py): a normal load plus
twice its cost. A case that allocated more would come back as MemoryError instead of a refusal.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CASES = {
    "zip_bomb": "over the limit", "heads_20000": "heads per layer", "dim_1e6": "dim must be", "classes_1e10": "num_classes must be",
    "dim_fraction": "dim must be an integer", "dim_nan": "dim must be an integer", "head_dim_fraction": "head_dim must be an integer",
    "std_zero": "std must be positive", "png_100000x1": "too elongated", "png_1000000x1": "too elongated",
    "nested_config": "nests JSON too deeply", "nested_scores": "nests JSON too deeply", "scores_unknown_kept": "L5.H7",
    "wnids_not_utf8": "wnids.txt is not UTF-8", "annotations_not_utf8": "val_annotations.txt is not UTF-8",
    "config_rejects_direct": "dim must be an integer",
}


def _bomb(path: Path) -> None:
    """A checkpoint zip whose model.safetensors inflates to 1 GiB of zeros (about 1 MB on disk)."""
    chunk = bytes(2**20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("model.safetensors", "w", force_zip64=True) as f:
            for _ in range(1024):
                f.write(chunk)
        z.writestr("config.json", json.dumps({"model": {"dim": 192, "heads": [12] * 9, "mlp_widths": [384] * 9, "num_classes": 200}}))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    _bomb(work / "bomb.zip")
    assert (work / "bomb.zip").stat().st_size < 8 * 2**20
    proc = subprocess.run([sys.executable, str(HERE / "hostile_cases.py"), str(work)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {r["case"]: r for r in rows}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input_is_refused_in_one_line_within_the_memory_cap(outcomes, case):
    row = outcomes[case]
    assert row["outcome"] == "refused", row
    assert CASES[case] in row["message"] and "\n" not in row["message"]


def test_the_cap_is_tight_enough_to_catch_a_gigabyte(outcomes):
    assert outcomes["_cap"]["cap_over_start"] < 2**30
