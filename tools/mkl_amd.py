"""Run a command with MKL's fast AVX2 kernels on AMD CPUs.

Intel's MKL (linked into PyTorch's x86 wheels) asks ``mkl_serv_intel_cpu_true()`` whether the CPU is
Intel's and, on an AMD CPU, runs slower generic matmul kernels even where AVX2 is there. Preloading a
one-line library whose ``mkl_serv_intel_cpu_true`` answers 1 selects the AVX2 kernels. Results are the
same up to float rounding (``tests/test_mkl_amd.py``); the gain is measured by
``python benchmarks/bench_mkl_amd.py``. On other CPUs, or without AVX2 or a C compiler, the command runs
unchanged.

Run: python tools/mkl_amd.py python -m vitcore train ...
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = "int mkl_serv_intel_cpu_true(void) { return 1; }\n"
CACHE = Path(os.environ.get("VITCORE_CACHE", Path.home() / ".cache" / "vitcore"))


def cpu_wants_shim(cpuinfo: str) -> bool:
    """True for an AMD CPU with AVX2 and FMA, read from the text of ``/proc/cpuinfo``."""
    vendor = flags = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = value
    return vendor == "AuthenticAMD" and {"avx2", "fma"} <= set(flags.split())


def build_shim(directory: Path = CACHE) -> Path | None:
    """Compile the preload library into ``directory`` (once); None without a C compiler."""
    target = directory / "libmkl_intel_cpu_true.so"
    if target.exists():
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "shim.c"
        source.write_text(SOURCE)
        built = Path(tmp) / target.name
        subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(built), str(source)], check=True)
        os.replace(built, target)  # atomic: a concurrent caller sees the old state or the whole file
    return target


def shim_environment(env: dict[str, str], cpuinfo: str, directory: Path = CACHE) -> tuple[dict[str, str], str]:
    """``env`` with the shim preloaded where it applies, and one line saying what was done."""
    if not cpu_wants_shim(cpuinfo):
        return dict(env), "mkl_amd: not an AMD CPU with AVX2; running unchanged"
    shim = build_shim(directory)
    if shim is None:
        return dict(env), "mkl_amd: no C compiler (cc or gcc) to build the shim; running unchanged"
    return with_preload(env, shim), f"mkl_amd: preloading {shim}"


def with_preload(env: dict[str, str], shim: Path) -> dict[str, str]:
    """``env`` with ``shim`` first in ``LD_PRELOAD``, any library already there kept behind it."""
    return {**env, "LD_PRELOAD": " ".join(p for p in (str(shim), env.get("LD_PRELOAD", "")) if p)}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    env, said = shim_environment(dict(os.environ), cpuinfo)
    print(said, file=sys.stderr, flush=True)
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as err:
        print(f"mkl_amd: cannot run {argv[0]!r}: {err.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
