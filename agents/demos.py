"""Demonstration datasets in Minari format (Farama's standard for offline RL data).

A recording rolls a policy out for seeded episodes and writes observations (in the env's
``obs_mode``), actions, rewards, terminations, truncations and the task metrics from ``info``
into a Minari dataset directory, one episode at a time (an image recording never holds more
than one episode in memory). It is written beside its destination and moved into place
only when complete, so an interrupted recording leaves nothing half-written (and what a killed
one left is removed by the next recording to the same path). An existing dataset is replaced
only when asked to (``force``), and only if it is one that surgisim recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from surgisim.agents.evaluate import policy_env
from surgisim.envs import task_name
from surgisim.envs.files import check_writable, remove_stale, staging_prefix

AUTHOR = "surgisim"


def dataset_id(env_id: str, policy: str) -> str:
    """Minari id of a recording: ``surgisim/NeedlePick/expert-v0``, or ``.../trained-v0`` for a model."""
    return f"surgisim/{task_name(env_id)}/{'expert' if policy == 'expert' else 'trained'}-v0"


def default_path(env_id: str, policy: str) -> Path:
    """Where ``minari.load_dataset(dataset_id(...))`` looks for the recording."""
    from minari.storage.datasets_root_dir import get_dataset_path  # minari: the demos extra

    return Path(get_dataset_path()) / dataset_id(env_id, policy)


@contextlib.contextmanager
def _minari_root(root: Path) -> Iterator[None]:
    saved = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = saved


def _stack(items: list[dict[str, Any]]) -> dict[str, list]:
    return {key: [item[key] for item in items] for key in items[0]}


def record_demos(
    env_id: str,
    out: Path | None = None,
    policy: str = "expert",
    episodes: int = 10,
    seed: int = 0,
    obs_mode: str = "state",
    force: bool = False,
    env_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Record ``episodes`` episodes (seeds ``seed``, ``seed + 1``, ...) to a Minari dataset at
    ``out``; ``env_kwargs``: further env arguments (image size, randomisation)."""
    from minari import create_dataset_from_buffers  # the demos extra

    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    # Absolute: Minari's writer is pointed at a staging root and would resolve a relative path twice.
    out = check_writable(out if out is not None else default_path(env_id, policy), "dataset")
    if out.exists() or out.is_symlink():
        if not force:
            raise FileExistsError(f"{out} already exists; choose another path or pass --force to replace it")
        if not is_recording(out):
            raise ValueError(
                f"{out} is not a dataset that surgisim recorded; --force replaces only those. "
                "Choose another --out (nothing was changed)"
            )
    kwargs = {**(env_kwargs or {}), "obs_mode": obs_mode}
    env, actor = policy_env(env_id, policy, kwargs, fixed=("obs_mode",))
    try:
        # Minari's writer takes each episode from this generator as it is rolled out.
        buffers = (_rollout(env, actor, episode, seed + episode) for episode in range(episodes))
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(out)
        staging = Path(tempfile.mkdtemp(prefix=staging_prefix(out), dir=out.parent))
        try:
            with _minari_root(staging), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="`(author_email|code_permalink)` is set to None")
                create_dataset_from_buffers(
                    dataset_id(env_id, policy),
                    buffers,
                    env=env.spec,
                    eval_env=env.spec,
                    algorithm_name=f"surgisim {policy}",
                    author=AUTHOR,
                    description=f"{policy} demonstrations on {env_id} ({_arguments(kwargs)}, seeds from {seed})",
                    data_format="hdf5",
                    jpeg_encoding=False,  # lossless: depth and segmentation must survive
                )
            if out.exists():  # replaced (--force): parked in the staging folder, removed with it
                os.replace(out, staging / "replaced")
            os.replace(staging / dataset_id(env_id, policy), out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        env.close()
    return out


def _arguments(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in kwargs.items() if value is not None)


def _rollout(env: gym.Env, actor: Any, index: int, seed: int) -> Any:
    """One episode as a Minari ``EpisodeBuffer`` (observations and infos include the reset)."""
    from minari.data_collector import EpisodeBuffer  # the demos extra

    observation, info = env.reset(seed=seed)
    actor.reset()
    observations, infos, actions, rewards, terminations, truncations = [observation], [info], [], [], [], []
    done = False
    while not done:
        action = actor(observation)
        observation, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        observations.append(observation)
        infos.append(info)
        actions.append(np.asarray(action, dtype=np.float32))
        rewards.append(float(reward))
        terminations.append(bool(terminated))
        truncations.append(bool(truncated))
    return EpisodeBuffer(
        id=index,
        seed=seed,
        observations=_stack(observations),
        actions=actions,
        rewards=rewards,
        terminations=terminations,
        truncations=truncations,
        infos=_stack(infos),
    )


def is_recording(path: Path) -> bool:
    """Whether ``path`` is a dataset folder that ``record_demos`` wrote, holding nothing else."""
    data = Path(path) / "data"
    try:
        if path.is_symlink() or [entry.name for entry in path.iterdir()] != ["data"]:
            return False
        if not {entry.name for entry in data.iterdir()} <= {"main_data.hdf5", "metadata.json"}:
            return False
        metadata = json.loads((data / "metadata.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(metadata, dict)
        and str(metadata.get("dataset_id", "")).startswith("surgisim/")
        and AUTHOR in (metadata.get("author") or [])
    )


def load_demos(path: Path) -> Any:
    """Open a recording (a ``minari.MinariDataset``) from its directory."""
    from minari import MinariDataset  # the demos extra

    data = Path(path) / "data"
    if not data.is_dir():
        raise FileNotFoundError(f"{path} is not a Minari dataset (no data/ directory); record one with surgisim demos")
    return MinariDataset(data)
