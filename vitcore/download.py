"""Download of the official Tiny ImageNet zip: progress bar, size and checksum checks, atomic write."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from .errors import VitcoreError

OFFICIAL_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


class DownloadError(VitcoreError):
    """A download that failed, was truncated or does not match its checksum."""


def download(url: str, out: Path, sha256: str | None = None, timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch ``url`` to ``out`` through ``out.part``; on any failure no partial file remains."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            expected = int(resp.headers.get("Content-Length") or -1)
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=expected if expected > 0 else None, unit="B", unit_scale=True, desc=out.name)
            with open(part, "wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            if bar is not None:
                bar.close()
        if expected > 0 and received != expected:
            raise DownloadError(f"download of {url} truncated: got {received:,} of {expected:,} bytes")
        if sha256 and digest.hexdigest() != sha256.lower():
            raise DownloadError(f"checksum mismatch for {url}: expected {sha256}, got {digest.hexdigest()}")
        _check_zip(part)
        os.replace(part, out)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    except Exception as e:  # network errors, http.client.IncompleteRead, disk full, interrupts
        part.unlink(missing_ok=True)
        raise DownloadError(f"download of {url} failed after {received:,} bytes: {e}") from e
    return out


def _check_zip(path: Path) -> None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            if not any(n.endswith("wnids.txt") for n in z.namelist()):
                raise DownloadError("downloaded file is a zip but not Tiny ImageNet (no wnids.txt)")
    except zipfile.BadZipFile as e:
        raise DownloadError(f"downloaded file is not a valid zip: {e}") from e
