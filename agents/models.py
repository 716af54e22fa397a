"""Trained models: loading a run's model and policy, the env a run trains on, and its settings.

A policy loads from a run folder (its current checkpoint), a checkpoint folder or a model file,
with every file it needs checked (see ``surgisim.agents.checkpoint``).
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml
from gymnasium.wrappers import FilterObservation
from sb3_contrib import TQC
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from surgisim.agents import checkpoint
from surgisim.agents.config import validate
from surgisim.envs.core import OBS_MODES
from surgisim.envs.documents import StrictLoader, excerpt, read_yaml

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"sac": SAC, "td3": TD3, "tqc": TQC, "ppo": PPO}


# Env arguments a run may set besides those its settings own (obs_mode, image_size, reward_type).
RUN_ENV_KWARGS = ("control", "action_frame", "renderer", "tool", "randomize", "randomize_config")
FILE_ENV_KWARGS = ("tool", "randomize_config")  # env arguments that may name a file
# What a run's env was like, not what its policy needs to see or do: an evaluation may change them.
WORLD_ENV_KWARGS = ("reward_type", "randomize", "randomize_config")


def check_env_kwargs(env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` if the env takes them (a probe env is made), else a ``ValueError`` naming the
    argument and what it may be. File paths (a tool file, a randomisation config) are made
    absolute, so that the run finds the same files from any folder."""
    unknown = sorted(set(kwargs) - set(RUN_ENV_KWARGS))
    if unknown:
        raise ValueError(f"env argument {', '.join(unknown)} cannot be set for a run; it may set "
                         f"{', '.join(RUN_ENV_KWARGS)} (obs_mode, image_size, reward_type have options)")  # fmt: skip
    kwargs = dict(kwargs)
    for key in FILE_ENV_KWARGS:
        value = kwargs.get(key)
        if isinstance(value, str) and (key != "tool" or value.endswith(".json")):  # a tool is a name or a file
            kwargs[key] = os.path.abspath(value)
    if kwargs:
        gym.make(env_id, **kwargs).close()
    return kwargs


def env_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """The env arguments of a run: its observation mode, image size, reward and any it set
    (``env_kwargs``: control, action frame, renderer, tool, randomisation)."""
    hyper = settings.get("hyperparameters", {})
    kwargs = {"obs_mode": settings.get("obs_mode", "state"), "reward_type": hyper.get("reward_type", "sparse")}
    for key in ("image_size", "tip_zoom"):
        if key in hyper:
            kwargs[key] = hyper[key]
    return {**kwargs, **settings.get("env_kwargs", {})}


def make_env(settings: dict[str, Any], worker: bool = False, monitor: bool = False) -> gym.Env:
    """A training env for the run; a pixel run's sees only the endoscope images (a ``robot`` run's
    what a robot has: the image, the arms' reported state, an operator's goal). ``worker``: in
    its own process (one torch thread; Ctrl-C is the learner's to handle). ``monitor``: episode
    returns and lengths for SB3's logs (``rollout/ep_rew_mean``)."""
    if worker:
        torch.set_num_threads(1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    env = gym.make(settings["env_id"], **env_kwargs(settings))
    obs_mode = settings.get("obs_mode", "state")
    images = OBS_MODES[obs_mode]
    env = FilterObservation(env, list(images)) if images and obs_mode != "robot" else env  # robot: as the env gives
    return Monitor(env) if monitor else env


class ModelPolicy:
    """A trained model as a policy: ``policy(observation) -> action`` (deterministic), with the
    run's observation normalisation when it had one. ``env_kwargs`` says which observations it
    needs (its run's obs_mode and image size)."""

    def __init__(self, model: BaseAlgorithm, normalizer: VecNormalize | None = None,
                 env_kwargs: dict[str, Any] | None = None, env_id: str | None = None,
                 source: str = "the model") -> None:  # fmt: skip
        self.model, self.normalizer, self.env_id, self.source = model, normalizer, env_id, source
        self.keys = list(model.observation_space.spaces)
        self.env_kwargs = {key: value for key, value in (env_kwargs or {}).items() if key not in WORLD_ENV_KWARGS}
        # What it takes, as the env gives it: SB3 stores images channels first.
        self.observation_shapes = {
            key: (*space.shape[1:], space.shape[0]) if len(space.shape) == 3 else space.shape
            for key, space in model.observation_space.spaces.items()
        }
        self.action_shape = model.action_space.shape

    def reset(self) -> None:
        """Stateless: nothing to forget."""

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        observation = {key: observation[key] for key in self.keys}
        if self.normalizer is not None:
            observation = self.normalizer.normalize_obs(observation)
        return self.model.predict(observation, deterministic=True)[0]


def load_policy(path: Path) -> ModelPolicy:
    """The policy of a run folder, checkpoint folder or model file, with its normalisation
    statistics where the run had them (a missing file is an error naming it)."""
    model_file, settings = _model_file(Path(path))
    stats = model_file.parent / checkpoint.NORMALIZATION
    if _rl_zoo_run(Path(path)) is not None:  # rl_zoo3 keeps it beside its settings
        stats = model_file.with_suffix("") / checkpoint.NORMALIZATION
    if settings and checkpoint.NORMALIZATION in checkpoint.policy_files(settings) and not stats.is_file():
        raise ValueError(f"{stats} is missing: the policy of {path} needs its observation normalisation statistics")
    model = load_model(Path(path))
    normalizer = None
    if stats.is_file():

        def load() -> VecNormalize:  # it takes a vectorised env for its spaces: the model's own
            return VecNormalize.load(str(stats), DummyVecEnv([lambda: model.get_env().envs[0]]))

        normalizer = loaded(stats, load)
        normalizer.training = False
    return ModelPolicy(model, normalizer, env_kwargs(settings), settings.get("env_id"), str(path))


def _rl_zoo_run(path: Path) -> tuple[Path, dict[str, Any]] | None:
    """An rl_zoo3 run folder (``logs/<algo>/<env>_<n>``: ``<env>.zip`` and ``<env>/args.yml``,
    ``config.yml``, ``vecnormalize.pkl``): its model file and settings, or None. Settings that are
    not rl_zoo3's are a ``ValueError`` naming the file."""
    found = sorted(path.glob("*/args.yml")) if path.is_dir() else []
    if not found:
        return None
    folder = found[0].parent
    arguments, hyper = _zoo_yaml(folder / "args.yml"), _zoo_yaml(folder / "config.yml")
    env_id, algo = arguments.get("env"), arguments.get("algo")
    _check_run_kind(env_id, algo, folder / "args.yml")
    model_file = path / f"{folder.name}.zip"
    if not model_file.is_file():
        raise ValueError(f"{path}: an rl_zoo3 run folder without its final model {model_file.name}")
    settings = {"env_id": env_id, "algo": algo, "obs_mode": "state",
                "hyperparameters": {"normalize": bool(hyper.get("normalize"))}}  # fmt: skip
    return model_file, settings


class _ZooLoader(StrictLoader):
    """Reads rl_zoo3's ``OrderedDict`` tag (a list of [key, value] pairs) as a dict; no other Python tag."""


def _ordered(loader: StrictLoader, node: yaml.Node) -> dict[Any, Any]:
    pairs = []
    if isinstance(node, yaml.SequenceNode) and len(node.value) == 1 and isinstance(node.value[0], yaml.SequenceNode):
        pairs = loader.construct_sequence(node.value[0], deep=True)
    if not pairs or not all(isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) for pair in pairs):
        raise yaml.constructor.ConstructorError(None, None, "an OrderedDict is not a list of [name, value] pairs",
                                                node.start_mark)  # fmt: skip
    return dict(pairs)


_ZooLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered)


def _zoo_yaml(path: Path) -> dict[str, Any]:
    """rl_zoo3's ``args.yml``/``config.yml`` (an OrderedDict as pairs) as a dict, read safely."""
    try:
        document = read_yaml(path, "rl_zoo3 settings", _ZooLoader)
    except ValueError as error:
        raise ValueError(f"{error} (rl_zoo3's settings)") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValueError(f"{path}: rl_zoo3's settings are a mapping, not {type(document).__name__}")
    return document


def _model_file(path: Path) -> tuple[Path, dict[str, Any]]:
    """The model file of a run folder (its current checkpoint), an rl_zoo3 run folder, a
    checkpoint folder or a model ``.zip``, and the run settings found beside it (empty for a bare
    model file)."""
    zoo = _rl_zoo_run(path)
    if zoo is not None:
        return zoo
    if (path / "config.yaml").is_file() and not (path / checkpoint.MODEL).exists():  # a run folder
        current = checkpoint.current(path)
        if current is None:
            raise ValueError(
                f"{path}: no checkpoint yet (the run stopped before its first); continue it with "
                f"surgisim train ENV_ID --resume {path}"
            )
        path = current.folder
    model_file = path / checkpoint.MODEL if path.is_dir() else path
    if not model_file.is_file():
        raise ValueError(f"{model_file}: no such model file; give a run folder or a model .zip")
    return model_file, read_settings(model_file.parent / "config.yaml", required=False)


def load_model(path: Path, env: VecEnv | None = None, device: str = "cpu") -> BaseAlgorithm:
    """A model from a run folder, checkpoint folder or ``model.zip`` (its algorithm from the
    run's config.yaml where there is one)."""
    model_file, settings = _model_file(Path(path))
    algo = settings.get("algo")
    if env is None and "env_id" in settings:  # HER models need their env to load
        env = DummyVecEnv([functools.partial(make_env, settings)])
    candidates = [ALGORITHMS[algo]] if algo in ALGORITHMS else list(ALGORITHMS.values())
    errors = []
    for cls in candidates:
        try:
            return cls.load(model_file, env=env, device=device)
        except Exception as error:  # a corrupt or foreign file fails in many ways; report them all
            errors.append(f"{cls.__name__}: {type(error).__name__}: {error}")
    raise ValueError(f"{model_file}: cannot load a model ({'; '.join(errors)})")


def read_settings(path: Path, required: bool = True) -> dict[str, Any]:
    """A run's config.yaml, checked (``{}`` where there is none and ``required`` is false)."""
    if not path.is_file():
        if required:
            raise ValueError(f"{path.parent}: not a run folder (no config.yaml)")
        return {}
    settings = read_yaml(path, "run configuration")
    if not isinstance(settings, dict) or not isinstance(settings.get("hyperparameters"), dict):
        raise ValueError(f"{path}: not a run configuration (a mapping with hyperparameters, env_id, algo, seed, "
                         "obs_mode)")  # fmt: skip
    missing = [key for key in ("env_id", "algo", "seed", "obs_mode") if key not in settings]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    _check_run_kind(settings["env_id"], settings["algo"], path)
    if not isinstance(settings["obs_mode"], str) or settings["obs_mode"] not in OBS_MODES:
        raise ValueError(f"{path}: obs_mode {excerpt(settings['obs_mode'])} is not one of {', '.join(OBS_MODES)}")
    if not isinstance(settings.get("env_kwargs", {}), dict):
        raise ValueError(f"{path}: env_kwargs {excerpt(settings['env_kwargs'])} is not a mapping")
    validate(settings["hyperparameters"], str(path), settings["algo"])
    return settings


def _check_run_kind(env_id: Any, algo: Any, source: Path) -> None:
    """A ``ValueError`` naming ``source`` unless a run's env id is registered and its algorithm known."""
    if not (isinstance(env_id, str) and env_id in gym.registry and isinstance(algo, str) and algo in ALGORITHMS):
        raise ValueError(f"{source}: env id {excerpt(env_id)} and algorithm {excerpt(algo)} are not a registered "
                         f"env id and one of {', '.join(ALGORITHMS)}")  # fmt: skip


def loaded(path: Path, load: Callable[[], Any]) -> Any:
    """Run ``load``; a file that cannot be read becomes a ValueError naming it."""
    try:
        return load()
    except Exception as error:  # corrupt pickles fail in many ways
        raise ValueError(f"{path}: cannot be loaded ({type(error).__name__}: {error})") from None
