"""Training hyperparameters: YAML files in ``surgisim.configs``, one per algorithm, keyed by env id.

Values are plain YAML (anchors allowed, nothing evaluated), read by ``surgisim.envs.documents``:
numbers as YAML 1.2 reads them (``3e-4`` is a number, not a string), a key given twice is an
error, and size and nesting are bounded. Every key is
checked on load against ``SCHEMA``: an unknown key or a bad value raises ``ConfigError`` naming the
file, the env id and the key. An env id missing from a file gets the file's ``goal_task`` entry,
if any.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from surgisim.envs.documents import DocumentError, excerpt, is_number, read_yaml
from surgisim.envs.files import atomic_write


class ConfigError(ValueError):
    """A hyperparameter file or value that cannot be used."""


def is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _non_negative_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _fraction(value: Any) -> bool:
    return is_number(value) and 0.0 < value <= 1.0


def is_positive_number(value: Any) -> bool:
    return is_number(value) and value > 0


def _non_negative_number(value: Any) -> bool:
    return is_number(value) and value >= 0


def _log_std(value: Any) -> bool:
    return is_number(value) and -5 <= value <= 1


def _layer_sizes(value: Any) -> bool:
    return isinstance(value, list) and len(value) > 0 and all(map(is_positive_int, value))


def _image_size(value: Any) -> bool:
    return is_positive_int(value) and 36 <= value <= 256  # NatureCNN needs 36 pixels at least


OFF_POLICY = ("sac", "td3", "tqc")  # the algorithms with a replay buffer (and HER)
ALGORITHM_NAMES = (*OFF_POLICY, "ppo")  # surgisim.agents.models.ALGORITHMS gives their classes
# key: (check, what a valid value is, the algorithms that use it)
SCHEMA: dict[str, tuple[Callable[[Any], bool], str, tuple[str, ...]]] = {
    "n_timesteps": (is_positive_int, "a positive integer", ALGORITHM_NAMES),
    "n_envs": (is_positive_int, "a positive integer", ALGORITHM_NAMES),
    "her": (lambda v: isinstance(v, bool), "true or false", OFF_POLICY),
    "normalize": (lambda v: isinstance(v, bool), "true or false", ALGORITHM_NAMES),
    "n_sampled_goal": (is_positive_int, "a positive integer", OFF_POLICY),
    "goal_selection_strategy": (lambda v: v in ("future", "final", "episode"), "future, final or episode", OFF_POLICY),
    "learning_rate": (lambda v: is_positive_number(v) and v <= 1, "a number in (0, 1]", ALGORITHM_NAMES),
    "buffer_size": (is_positive_int, "a positive integer", OFF_POLICY),
    "batch_size": (is_positive_int, "a positive integer", ALGORITHM_NAMES),
    "gamma": (_fraction, "a number in (0, 1]", ALGORITHM_NAMES),
    "tau": (_fraction, "a number in (0, 1]", OFF_POLICY),
    "learning_starts": (_non_negative_int, "a non-negative integer", OFF_POLICY),
    "train_freq": (is_positive_int, "a positive integer", OFF_POLICY),
    "gradient_steps": (is_positive_int, "a positive integer", OFF_POLICY),
    "n_steps": (is_positive_int, "a positive integer", ("ppo",)),
    "n_epochs": (is_positive_int, "a positive integer", ("ppo",)),
    "gae_lambda": (_fraction, "a number in (0, 1]", ("ppo",)),
    "clip_range": (_fraction, "a number in (0, 1]", ("ppo",)),
    "ent_coef": (_non_negative_number, "a non-negative number", ("ppo",)),
    "vf_coef": (is_positive_number, "a positive number", ("ppo",)),
    "max_grad_norm": (is_positive_number, "a positive number", ("ppo",)),
    "log_std_init": (_log_std, "a number from -5 to 1", ("ppo",)),
    "net_arch": (_layer_sizes, "a list of layer sizes", ALGORITHM_NAMES),
    "image_size": (_image_size, "an integer from 36 to 256", ALGORITHM_NAMES),
    # A robot-mode policy's magnified view around the reported tip (the env's tip_zoom).
    "tip_zoom": (lambda v: is_positive_number(v) and 1 <= v <= 16, "a number from 1 to 16", ALGORITHM_NAMES),
    # How images become features: SB3's NatureCNN, or image positions (surgisim.agents.extractors).
    "extractor": (lambda v: v in ("cnn", "keypoints"), "cnn or keypoints", ALGORITHM_NAMES),
    "reward_type": (lambda v: v in ("sparse", "dense"), "sparse or dense", ALGORITHM_NAMES),
    "bc_steps": (_non_negative_int, "a non-negative integer", ALGORITHM_NAMES),
    "bc_weight": (_non_negative_number, "a non-negative number", OFF_POLICY),
    "eval_freq": (is_positive_int, "a positive integer", ALGORITHM_NAMES),
    "eval_episodes": (is_positive_int, "a positive integer", ALGORITHM_NAMES),
    "checkpoint_freq": (is_positive_int, "a positive integer", ALGORITHM_NAMES),
}
DEFAULT_ENTRY = "goal_task"


def config_path(algo: str) -> Path:
    return Path(str(files("surgisim.configs"))) / f"{algo}.yaml"


def validate(config: dict[str, Any], source: str, algo: str) -> dict[str, Any]:
    """Check every key and value for ``algo``; ``source`` names where they came from, for the message."""
    for key, value in config.items():
        if key not in SCHEMA:
            raise ConfigError(f"{source}: unknown key {excerpt(key)}; known keys: {', '.join(SCHEMA)}")
        check, expected, algorithms = SCHEMA[key]
        if algo not in algorithms:
            raise ConfigError(f"{source}: {key} is not a setting of {algo} (only of {', '.join(algorithms)})")
        if not check(value):
            raise ConfigError(f"{source}: {key} = {excerpt(value)} is not valid; expected {expected}")
    return config


def load_config(algo: str, env_id: str, path: Path | None = None) -> dict[str, Any]:
    """The validated hyperparameters for ``env_id`` from ``path`` (default: the algorithm's file)."""
    path = path or config_path(algo)
    if not path.exists():
        raise ConfigError(f"no hyperparameter file for algorithm {algo!r} (looked for {path})")
    try:
        entries = read_yaml(path, "hyperparameter YAML")
    except DocumentError as error:
        raise ConfigError(str(error)) from None
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: expected a mapping from env id to hyperparameters")
    name = env_id if env_id in entries else DEFAULT_ENTRY
    if name not in entries or not isinstance(entries[name], dict):
        raise ConfigError(f"{path}: no entry for {env_id} and no {DEFAULT_ENTRY!r} entry to fall back on")
    return validate(dict(entries[name]), f"{path} [{name}]", algo)


# What rl_zoo3 takes as it is, and what only surgisim's training uses (left out of an export).
RL_ZOO_KEYS = ("n_timesteps", "n_envs", "learning_rate", "buffer_size", "batch_size", "gamma", "tau",
               "learning_starts", "train_freq", "gradient_steps", "n_steps", "n_epochs", "gae_lambda",
               "clip_range", "ent_coef", "vf_coef", "max_grad_norm")  # fmt: skip
SURGISIM_ONLY = ("eval_freq", "eval_episodes", "checkpoint_freq", "bc_steps", "bc_weight", "reward_type", "image_size",
                 "extractor", "tip_zoom")  # fmt: skip


def to_rl_zoo(hyper: dict[str, Any]) -> dict[str, Any]:
    """One env's hyperparameters in rl_zoo3's format (its ``hyperparams/<algo>.yml``): HER as
    ``replay_buffer_class``, network settings as ``policy_kwargs`` and normalisation as
    ``normalize``, the last three as the Python expressions rl_zoo3 evaluates."""
    entry: dict[str, Any] = {"policy": "MultiInputPolicy"}
    entry.update({key: hyper[key] for key in RL_ZOO_KEYS if key in hyper})
    if hyper.get("her"):
        entry["replay_buffer_class"] = "HerReplayBuffer"
        settings = {key: hyper[key] for key in ("n_sampled_goal", "goal_selection_strategy") if key in hyper}
        entry["replay_buffer_kwargs"] = f"dict({', '.join(f'{k}={v!r}' for k, v in settings.items())})"
    network = {key: hyper[key] for key in ("net_arch", "log_std_init") if key in hyper}
    if network:
        entry["policy_kwargs"] = f"dict({', '.join(f'{k}={v!r}' for k, v in network.items())})"
    if hyper.get("normalize", True):
        entry["normalize"] = "{'norm_obs': True, 'norm_reward': False}"
    return entry


EXPORT_MARK = "# rl_zoo3 hyperparameters for"  # the first line of a file export_rl_zoo wrote


def is_rl_zoo_export(path: Path) -> bool:
    """Whether ``path`` is a regular file that ``export_rl_zoo`` wrote (its first line says so)."""
    try:
        if not path.is_file() or path.is_symlink():
            return False
        with path.open(encoding="utf-8", errors="replace") as handle:
            first = handle.readline(200)
    except OSError:
        return False
    return first.startswith(EXPORT_MARK) and "exported by surgisim" in first


def export_rl_zoo(algo: str, env_ids: list[str], path: Path) -> list[str]:
    """``path``: rl_zoo3's hyperparameter file for ``algo`` with an entry per env id that has one
    here; returns what each entry leaves out (surgisim-only settings)."""
    entries, dropped = {}, set()
    for env_id in env_ids:
        hyper = load_config(algo, env_id)
        entries[env_id] = to_rl_zoo(hyper)
        dropped |= set(hyper) & set(SURGISIM_ONLY)
    header = (f"{EXPORT_MARK} {algo}, exported by surgisim from configs/{algo}.yaml.\n"
              f"# Train: python -m rl_zoo3.train --algo {algo} --env ENV_ID --gym-packages surgisim.envs "
              f"--conf-file {path.name}\n"
              f"# Left out (surgisim's own): {', '.join(sorted(dropped)) or 'nothing'}.\n")  # fmt: skip
    text = header + yaml.safe_dump(entries, sort_keys=False)
    atomic_write(path, lambda temporary: temporary.write_text(text))
    return sorted(dropped)
