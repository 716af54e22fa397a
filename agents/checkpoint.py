"""A run's checkpoint: the model, its replay buffer and its observation normalisation, as one set.

A checkpoint's files are written into a new folder ``checkpoints/<steps>-<id>/`` of the run, with
a copy of the run's ``config.yaml`` (so a model file taken from there loads on its own). When all
are on disk, ``checkpoint.json`` (the manifest: that folder, the step count, each file and its
size) is replaced atomically to name the new set, and only then are older sets removed. A kill at
any instant leaves the manifest naming a complete set: the previous one or the new one. What a
killed writer leaves (a set the manifest does not name, a half-written manifest) is removed by
the next ``surgisim train`` of the run, which holds a lock on the run folder while it trains.

Nothing outside the run folder is ever removed: a run whose parts are symbolic links (its
``checkpoints`` moved to another disk, say) is refused, naming them (``check_contained``), and
only folders named as sets are removed from ``checkpoints/``. A manifest that is missing while
complete sets lie in ``checkpoints/`` is rebuilt from the newest of them (``current``); a damaged
one is refused, never taken for "no checkpoint yet".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from surgisim.agents.config import OFF_POLICY
from surgisim.envs.documents import DocumentError, excerpt, read_json, read_yaml, shorten
from surgisim.envs.files import atomic_write, refuse_links, remove, remove_stale, unprivate

MANIFEST = "checkpoint.json"
FOLDER = "checkpoints"
MODEL, REPLAY_BUFFER, NORMALIZATION, CONFIG = "model.zip", "replay_buffer.pkl", "vecnormalize.pkl", "config.yaml"
NORMALISED_MODES = ("state", "robot")  # observation modes whose state vectors a run normalises
SET_NAME = re.compile(r"[0-9]{9}-\w+")  # a set's folder: its step count, then tempfile's random part
# What surgisim writes in a run folder: none of it may be a link that leads out of the folder.
RUN_PARTS = (MANIFEST, FOLDER, CONFIG, "command.txt", "dagger.csv", "eval.csv", "success.png", "final_policy.mp4",
             "tensorboard")  # fmt: skip


def normalised(settings: dict[str, Any]) -> bool:
    """Whether a run normalises its observations: its state vectors (images are scaled by SB3), in
    the state and robot modes."""
    wanted = settings.get("hyperparameters", {}).get("normalize", True)
    return wanted and settings.get("obs_mode", "state") in NORMALISED_MODES


def normaliser(env: VecEnv, settings: dict[str, Any]) -> VecNormalize:
    """A new observation normalisation of a run's state vectors, on ``env``."""
    vectors = [key for key, space in env.observation_space.spaces.items() if len(space.shape) == 1]
    return VecNormalize(env, norm_obs=True, norm_reward=False, clip_obs=10.0, norm_obs_keys=vectors)


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
    recovered: bool = False  # found without a manifest (``current``); ``write_manifest`` names it again

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
    saved = Checkpoint(folder, int(model.num_timesteps), files)
    write_manifest(run_dir, saved)
    clean(run_dir, saved)  # the older sets, now that the manifest names this one
    return saved


def write_manifest(run_dir: Path, checkpoint: Checkpoint) -> None:
    """Make ``checkpoint`` the run's current one: replace ``checkpoint.json`` atomically."""
    manifest = {"timesteps": checkpoint.timesteps, "folder": f"{FOLDER}/{checkpoint.folder.name}",
                "files": checkpoint.files}  # fmt: skip
    atomic_write(run_dir / MANIFEST, lambda path: _write_synced(path, json.dumps(manifest, indent=1)))


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
    a missing or damaged file is a ``ValueError`` naming it. Without a manifest, the newest
    complete set in ``checkpoints/`` is returned, marked ``recovered``; if sets lie there but none
    is complete, or the manifest is damaged, a ``ValueError`` says so: never "no checkpoint yet"."""
    manifest = run_dir / MANIFEST
    if not os.path.lexists(manifest):
        return _recover(run_dir)
    try:
        data = read_json(manifest, "checkpoint manifest")
        folder, timesteps, files = data["folder"], int(data["timesteps"]), dict(data["files"])
        sizes = {str(name): int(size) for name, size in files.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as error:  # DocumentError is a ValueError
        detail = error if isinstance(error, DocumentError) else f"{manifest}: {type(error).__name__}: {error}"
        raise ValueError(f"{shorten(str(detail), 300)}; not a checkpoint manifest.{_recovery_hint(run_dir)}") from None
    if not isinstance(folder, str) or not re.fullmatch(rf"{FOLDER}/{SET_NAME.pattern}", folder):
        raise ValueError(f"{manifest}: names {excerpt(folder)}, not a folder in {run_dir / FOLDER}")
    checkpoint = Checkpoint(run_dir / folder, timesteps, sizes)
    for name, size in sizes.items():
        path = checkpoint[name]
        if not path.is_file():
            raise ValueError(f"{path} is missing: the checkpoint at {timesteps} steps is incomplete")
        if path.stat().st_size != size:
            raise ValueError(f"{path} is damaged: {path.stat().st_size} bytes, {MANIFEST} records {size}")
    return checkpoint


def _sets(run_dir: Path) -> list[Path]:
    """The set folders in ``checkpoints/``, newest (most steps, then latest written) first."""
    sets = run_dir / FOLDER
    if not sets.is_dir() or sets.is_symlink():
        return []
    found = [entry for entry in sets.iterdir() if SET_NAME.fullmatch(entry.name) and not entry.is_symlink()]
    return sorted(found, key=lambda entry: (entry.name[:9], entry.stat().st_mtime), reverse=True)


def _complete(folder: Path, names: list[str]) -> bool:
    """Whether a set written without a manifest naming it holds every file whole: the model's
    zip archive checks out (its index is written last, and holds SB3's parts) and each pickle ends
    with pickle's STOP."""
    try:
        if not all((folder / name).is_file() and (folder / name).stat().st_size > 0 for name in names):
            return False
        with zipfile.ZipFile(folder / MODEL) as archive:  # a truncated one may show a zip inside it instead
            if not {"data", "policy.pth"} <= set(archive.namelist()) or archive.testzip() is not None:
                return False
        for name in names:
            if name.endswith(".pkl"):
                with (folder / name).open("rb") as handle:
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b".":
                        return False
    except (OSError, zipfile.BadZipFile):
        return False
    return True


def _recover(run_dir: Path) -> Checkpoint | None:
    sets = _sets(run_dir)
    if not sets:
        return None
    try:
        settings = read_yaml(run_dir / CONFIG, "run configuration")
        names = [*set_files(settings), CONFIG]  # the set's own settings are written last
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{run_dir / MANIFEST} is missing and {run_dir / CONFIG} cannot be read, so the sets in "
                         f"{run_dir / FOLDER} cannot be checked; nothing was changed") from None  # fmt: skip
    for folder in sets:
        if _complete(folder, names):
            files = {name: (folder / name).stat().st_size for name in sorted(os.listdir(folder))}
            return Checkpoint(folder, int(folder.name[:9]), files, recovered=True)
    raise ValueError(f"{run_dir / MANIFEST} is missing and no set in {run_dir / FOLDER} is complete "
                     f"({', '.join(folder.name for folder in sets)}); nothing was changed. To train the run again "
                     f"from step 0, move {run_dir / FOLDER} away first")  # fmt: skip


def _recovery_hint(run_dir: Path) -> str:
    if not _sets(run_dir):
        return ""
    return (f" Nothing was changed; to continue from the newest complete set in {run_dir / FOLDER}, move "
            f"{MANIFEST} away and resume again")  # fmt: skip


def check_contained(run_dir: Path) -> None:
    """A ``ValueError`` naming the parts of a run folder that are symbolic links: surgisim writes
    and removes files there, and will not follow a link out of the run."""
    parts = [run_dir / name for name in RUN_PARTS]
    sets = run_dir / FOLDER
    if sets.is_dir() and not sets.is_symlink():
        parts += sorted(sets.iterdir())
    refuse_links(parts, "run")


def require(checkpoint: Checkpoint, names: list[str]) -> None:
    """A ``ValueError`` unless the checkpoint has every one of ``names``."""
    missing = [name for name in names if name not in checkpoint.files]
    if missing:
        raise ValueError(f"the checkpoint in {checkpoint.folder} lacks {', '.join(missing)}, which this run needs")


def clean(run_dir: Path, keep: Checkpoint | None) -> None:
    """Remove what killed writers left in the run: sets other than ``keep``, a half-written
    manifest. Only set folders are removed, never a link or what it points to. Call it while
    holding ``locked(run_dir)``, after ``check_contained``."""
    remove_stale(run_dir / MANIFEST)
    for other in _sets(run_dir):
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
