"""Training hyperparameters: YAML files in ``surgisim.configs``, one per algorithm, keyed by env id.

Values are plain YAML (anchors allowed, nothing evaluated). Every key is checked on load against
``SCHEMA``: an unknown key or a bad value raises ``ConfigError`` naming the file, the env id and
the key. An env id missing from a file gets the file's ``goal_task`` entry, if any.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A hyperparameter file or value that cannot be used."""


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _non_negative_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _fraction(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value <= 1.0


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


SCHEMA: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n_timesteps": (_positive_int, "a positive integer"),
    "her": (lambda v: isinstance(v, bool), "true or false"),
    "normalize": (lambda v: isinstance(v, bool), "true or false"),
    "n_sampled_goal": (_positive_int, "a positive integer"),
    "goal_selection_strategy": (lambda v: v in ("future", "final", "episode"), "future, final or episode"),
    "learning_rate": (_positive_number, "a positive number"),
    "buffer_size": (_positive_int, "a positive integer"),
    "batch_size": (_positive_int, "a positive integer"),
    "gamma": (_fraction, "a number in (0, 1]"),
    "tau": (_fraction, "a number in (0, 1]"),
    "learning_starts": (_non_negative_int, "a non-negative integer"),
    "train_freq": (_positive_int, "a positive integer"),
    "gradient_steps": (_positive_int, "a positive integer"),
    "net_arch": (lambda v: isinstance(v, list) and len(v) > 0 and all(map(_positive_int, v)), "a list of layer sizes"),
    "eval_freq": (_positive_int, "a positive integer"),
    "eval_episodes": (_positive_int, "a positive integer"),
    "checkpoint_freq": (_positive_int, "a positive integer"),
}
DEFAULT_ENTRY = "goal_task"


def config_path(algo: str) -> Path:
    return Path(str(files("surgisim.configs"))) / f"{algo}.yaml"


def validate(config: dict[str, Any], source: str) -> dict[str, Any]:
    """Check every key and value; ``source`` names where they came from, for the message."""
    for key, value in config.items():
        if key not in SCHEMA:
            raise ConfigError(f"{source}: unknown key {key!r}; known keys: {', '.join(SCHEMA)}")
        check, expected = SCHEMA[key]
        if not check(value):
            raise ConfigError(f"{source}: {key} = {value!r} is not valid; expected {expected}")
    return config


def load_config(algo: str, env_id: str, path: Path | None = None) -> dict[str, Any]:
    """The validated hyperparameters for ``env_id`` from ``path`` (default: the algorithm's file)."""
    path = path or config_path(algo)
    if not path.is_file():
        raise ConfigError(f"no hyperparameter file for algorithm {algo!r} (looked for {path})")
    try:
        entries = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: expected a mapping from env id to hyperparameters")
    name = env_id if env_id in entries else DEFAULT_ENTRY
    if name not in entries or not isinstance(entries[name], dict):
        raise ConfigError(f"{path}: no entry for {env_id} and no {DEFAULT_ENTRY!r} entry to fall back on")
    return validate(dict(entries[name]), f"{path} [{name}]")
