"""Running the atlas: one task per (method, class), on Ray when it is installed, else in this process.

Each task's result is written to ``OUT/results/METHOD/WNID.json`` as soon as it finishes, so a run
that is stopped resumes where it was: finished tasks are skipped. ``OUT/atlas.json`` records the
settings; resuming with other settings is refused. On Ray, the model and the data go into the object
store once and every task reads them from there; a task whose worker dies or that raises is retried.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ..circuits import discover, get_method
from ..data import ImageSet
from ..errors import VitcoreError
from ..model import VisionTransformer

BACKENDS = ("auto", "ray", "local")


class AtlasError(VitcoreError):
    """An atlas that cannot run: unknown methods or classes, other settings in the folder, no Ray."""


@dataclass(frozen=True)
class AtlasTask:
    method: str
    wnid: str

    def path(self, out: Path) -> Path:
        return out / "results" / self.method / f"{self.wnid}.json"


@dataclass(frozen=True)
class AtlasSettings:
    """What every task shares; part of the run's identity (a resume must use the same)."""

    corruption: str = "resample"
    images: int | None = None  # discovery images per class (None: all of the class's)
    seed: int = 0
    model_sha256: str = ""
    threads_per_task: int = 1  # torch threads of each Ray worker (one process runs its tasks on all of its threads)
    options: tuple[tuple[str, int], ...] = ()  # methods' run options by field (each method reads its own)

    def record(self) -> dict:
        """The settings as the folder's atlas.json keeps them (no options: as before options existed)."""
        out = asdict(self)
        if not self.options:
            out.pop("options")
        else:
            out["options"] = dict(self.options)
        return out


@dataclass
class AtlasRun:
    backend: str
    ran: int
    skipped: int
    seconds: float
    task_seconds: list[float] = field(default_factory=list)  # wall time of each task that ran, inside its worker

    @property
    def tasks_per_second(self) -> float:
        return self.ran / self.seconds if self.seconds else 0.0


Solver = Callable[[VisionTransformer, ImageSet, AtlasTask, AtlasSettings], str]


def solve(model: VisionTransformer, data: ImageSet, task: AtlasTask, settings: AtlasSettings) -> str:
    """One task: the circuit of one class by one method, as result JSON (with its own wall time)."""
    entry = get_method(task.method)
    result = discover(
        model,
        data,
        [task.wnid],
        task.method,
        settings.corruption,
        n_images=settings.images,
        seed=settings.seed,
        model_sha256=settings.model_sha256,
        **entry.own_options(dict(settings.options)),
    )
    return result.to_json()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a task file is either absent or complete


def _check_settings(out: Path, methods: list[str], classes: list[str], settings: AtlasSettings) -> None:
    record = {"settings": settings.record(), "methods": sorted(methods)}
    path = out / "atlas.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise AtlasError(f"{path} is unreadable ({e}); remove it or choose another --out") from e
        if old.get("settings") != record["settings"]:
            raise AtlasError(
                f"{out} holds an atlas made with other settings ({old.get('settings')}); choose another --out"
            )
        record["methods"] = sorted(set(old.get("methods", [])) | set(methods))
        record["classes"] = sorted(set(old.get("classes", [])) | set(classes))
    else:
        record["classes"] = sorted(classes)
    out.mkdir(parents=True, exist_ok=True)
    _write(path, json.dumps(record, indent=1))


def run_atlas(
    model: VisionTransformer,
    data: ImageSet,
    classes: list[str],
    methods: list[str],
    out: str | Path,
    settings: AtlasSettings = AtlasSettings(),
    backend: str = "auto",
    address: str | None = None,
    workers: int | None = None,
    retries: int = 2,
    progress: bool = True,
    solver: Solver = solve,
) -> AtlasRun:
    """Run every (method, class) task that has no result file in ``out`` yet."""
    for m in methods:
        get_method(m)
    unknown = [w for w in classes if w not in data.wnids]
    if unknown:
        raise AtlasError(f"unknown class(es) {', '.join(unknown[:5])}")
    if backend not in BACKENDS:
        raise AtlasError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    out = Path(out)
    _check_settings(out, methods, classes, settings)
    tasks = [AtlasTask(m, w) for m in methods for w in classes]
    pending = [t for t in tasks if not t.path(out).exists()]
    if backend == "auto":
        backend = "ray" if importlib.util.find_spec("ray") is not None else "local"
    bar = tqdm(
        total=len(tasks),
        initial=len(tasks) - len(pending),
        desc=f"atlas ({backend})",
        unit="task",
        disable=not progress,
    )
    start = time.perf_counter()
    try:
        runner = _run_ray if backend == "ray" else _run_local
        task_seconds = (
            runner(model, data, pending, settings, out, retries, bar, solver, address, workers) if pending else []
        )
    finally:
        bar.close()
    return AtlasRun(backend, len(pending), len(tasks) - len(pending), time.perf_counter() - start, task_seconds)


def _seconds(text: str) -> float:
    return float(json.loads(text).get("wall_time_s", 0.0))


def _run_local(model, data, tasks, settings, out, retries, bar, solver, address, workers) -> list[float]:
    seconds = []
    for task in tasks:
        for attempt in range(retries + 1):
            try:
                text = solver(model, data, task, settings)
                break
            except VitcoreError:
                raise  # bad input: retrying cannot help
            except Exception:
                if attempt == retries:
                    raise
        _write(task.path(out), text)
        seconds.append(_seconds(text))
        bar.update(1)
    return seconds


def _in_worker(
    solver: Solver, model: VisionTransformer, data: ImageSet, task: AtlasTask, settings: AtlasSettings
) -> str:
    """A Ray task: the solver on the worker's share of the cores."""
    torch.set_num_threads(settings.threads_per_task)
    return solver(model, data, task, settings)


def _run_ray(model, data, tasks, settings, out, retries, bar, solver, address, workers) -> list[float]:
    try:
        import ray
    except ImportError:
        raise AtlasError(
            "the ray backend needs Ray: pip install -r requirements-cluster.txt (or pip install -e .[cluster])"
        ) from None
    from ..compute.ray_pool import start_ray

    started_here = start_ray(address, workers)
    try:
        remote = ray.remote(num_cpus=settings.threads_per_task, max_retries=retries, retry_exceptions=True)(_in_worker)
        model_ref, data_ref = ray.put(model), ray.put(data)
        running = {remote.remote(solver, model_ref, data_ref, task, settings): task for task in tasks}
        seconds = []
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                task = running.pop(ref)
                text = ray.get(ref)
                _write(task.path(out), text)
                seconds.append(_seconds(text))
                bar.update(1)
        return seconds
    finally:
        if started_here:
            ray.shutdown()
