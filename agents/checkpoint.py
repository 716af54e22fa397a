"""A run's checkpoint: the model, its replay buffer and its observation normalisation, as one set.

A checkpoint's files are written into a new folder ``checkpoints/<steps>-<id>/`` of the run, with
a copy of the run's ``config.yaml`` (so a model file taken from there loads on its own). When all
are on disk, ``checkpoint.json`` (the manifest: that folder, the step count, each file and its
size) is replaced atomically to name the new set, and only then are older sets removed. A kill at
any instant leaves the manifest naming a complete set: the previous one or the new one. What a
killed writer leaves (a set the manifest does not name, a half-written manifest) is removed by
the next ``surgisim train`` of the run, which holds a lock on the run folder while it trains.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.base_class import BaseAlgorithm

from surgisim.agents.config import OFF_POLICY
from surgisim.agents.files import atomic_write, remove, remove_stale, unprivate

MANIFEST = "checkpoint.json"
FOLDER = "checkpoints"
MODEL, REPLAY_BUFFER, NORMALIZATION, CONFIG = "model.zip", "replay_buffer.pkl", "vecnormalize.pkl", "config.yaml"


def normalised(settings: dict[str, Any]) -> bool:
    """Whether a run normalises its observations (state observations only; images are scaled by SB3)."""
    return settings.get("hyperparameters", {}).get("normalize", True) and settings.get("obs_mode", "state") == "state"


def policy_files(settings: dict[str, Any]) -> list[str]:
    """The files a run's policy needs: the model, and its normalisation statistics if it has them."""
    return [MODEL, *([NORMALIZATION] if normalised(settings) else [])]


def set_files(settings: dict[str, Any]) -> list[str]:
    """The files of a complete checkpoint of the run."""
    return [*policy_files(settings), *([REPLAY_BUFFER] if settings.get("algo") in OFF_POLICY else [])]


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint: its folder, step count and files (name: size in bytes)."""

    folder: Path
    timesteps: int
    files: dict[str, int]

    def __getitem__(self, name: str) -> Path:
        return self.folder / name


def save(model: BaseAlgorithm, run_dir: Path, settings: dict[str, Any]) -> Checkpoint:
    """Write the model's checkpoint as one set into ``run_dir`` and make it the current one."""
    sets = run_dir / FOLDER
    sets.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{model.num_timesteps:09d}-", dir=sets))
    unprivate(folder)
    model.save(folder / MODEL)
    if REPLAY_BUFFER in set_files(settings):
        model.save_replay_buffer(folder / REPLAY_BUFFER)
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        normalizer.save(str(folder / NORMALIZATION))
    write_settings(folder / CONFIG, settings)
    files = {}
    for path in sorted(folder.iterdir()):
        with path.open("rb") as handle:
            os.fsync(handle.fileno())  # on disk before the manifest names it
        files[path.name] = path.stat().st_size
    manifest = {"timesteps": int(model.num_timesteps), "folder": f"{FOLDER}/{folder.name}", "files": files}
    atomic_write(run_dir / MANIFEST, lambda path: _write_synced(path, json.dumps(manifest, indent=1)))
    saved = Checkpoint(folder, int(model.num_timesteps), files)
    clean(run_dir, saved)  # the older sets, now that the manifest names this one
    return saved


def write_settings(path: Path, settings: dict[str, Any]) -> None:
    """A run's settings as its ``config.yaml`` (keys in the order they were resolved)."""
    path.write_text(yaml.safe_dump(settings, sort_keys=False))


def _write_synced(path: Path, text: str) -> None:
    with path.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def current(run_dir: Path) -> Checkpoint | None:
    """The run's current checkpoint (``None`` before the first one), with every file checked:
    a missing or damaged file is a ``ValueError`` naming it."""
    manifest = run_dir / MANIFEST
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text())
        folder, timesteps, files = data["folder"], int(data["timesteps"]), dict(data["files"])
        sizes = {str(name): int(size) for name, size in files.items()}
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{manifest}: not a checkpoint manifest ({type(error).__name__}: {error})") from None
    if not isinstance(folder, str) or not re.fullmatch(rf"{FOLDER}/[0-9]{{9}}-\w+", folder):
        raise ValueError(f"{manifest}: names {folder!r}, not a folder in {run_dir / FOLDER}")
    checkpoint = Checkpoint(run_dir / folder, timesteps, sizes)
    for name, size in sizes.items():
        path = checkpoint[name]
        if not path.is_file():
            raise ValueError(f"{path} is missing: the checkpoint at {timesteps} steps is incomplete")
        if path.stat().st_size != size:
            raise ValueError(f"{path} is damaged: {path.stat().st_size} bytes, {MANIFEST} records {size}")
    return checkpoint


def require(checkpoint: Checkpoint, names: list[str]) -> None:
    """A ``ValueError`` unless the checkpoint has every one of ``names``."""
    missing = [name for name in names if name not in checkpoint.files]
    if missing:
        raise ValueError(f"the checkpoint in {checkpoint.folder} lacks {', '.join(missing)}, which this run needs")


def clean(run_dir: Path, keep: Checkpoint | None) -> None:
    """Remove what killed writers left in the run: sets other than ``keep``, a half-written
    manifest. Call it while holding ``locked(run_dir)``."""
    remove_stale(run_dir / MANIFEST)
    sets = run_dir / FOLDER
    if sets.is_dir():
        for other in sets.iterdir():
            if keep is None or other != keep.folder:
                remove(other)


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run folder for one training process; a second gets a ``ValueError``. The lock
    dies with its process, so a killed run never leaves its folder locked."""
    handle = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{run_dir} is being trained by another process; wait for it or stop it") from None
        yield
    finally:
        os.close(handle)
