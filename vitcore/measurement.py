"""Measurement files: a benchmark's figures with the command that made them, the machine and the date."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import torch


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def this_command() -> str:
    """This process's command line as a user would type it (``python -m vitcore ...`` for a module)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):
        return shlex.join(["python", "-m", Path(argv[0]).parent.name, *argv[1:]])
    return shlex.join(["python", *argv])


def write_measurement(path: str | Path, results: Any, command: str | None = None) -> Path:
    """Write ``results`` to ``path`` as JSON with the command (default: this process's), the machine and the date."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": command or this_command(),
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "results": results,
    }
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def read_measurement(path: str | Path) -> dict[str, Any]:
    """A measurement file as written by :func:`write_measurement`."""
    return json.loads(Path(path).read_text())


def capture(out: str | Path, command: list[str]) -> int:
    """Run ``command``, and write what it printed to ``out`` as a measurement record (parsed when it is JSON).

    For benchmarks that print their figures: the record names the command, the machine and the date.
    Returns the command's exit code; nothing is written when it fails.
    """
    import subprocess

    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        return done.returncode
    try:
        results: Any = json.loads(done.stdout)
    except ValueError:
        results = {"stdout": done.stdout}
    write_measurement(out, results, command=shlex.join(command))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m vitcore.measurement OUT.json -- COMMAND ...``: run COMMAND and record what it prints."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m vitcore.measurement", description=main.__doc__)
    p.add_argument("out", help="the measurement file to write (JSON)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the command to run after --")
    return capture(args.out, command)


if __name__ == "__main__":
    sys.exit(main())
