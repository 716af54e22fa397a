"""Argument types for the ``surgisim`` commands of every layer (argparse ``type=`` functions):
each turns a word into a checked value or raises ``argparse.ArgumentTypeError`` saying why."""

from __future__ import annotations

import argparse
import math

from surgisim.envs import env_ids, task_name


def env_id_type(value: str) -> str:
    """Accept ``surgisim/NeedleReach-v0`` or the short ``NeedleReach``."""
    ids = env_ids()
    for env_id in ids:
        if value in (env_id, env_id.removeprefix("surgisim/"), task_name(env_id)):
            return env_id
    raise argparse.ArgumentTypeError(f"unknown environment {value!r}; choose from {', '.join(ids)}")


def _integer_from(value: str, low: int, rule: str) -> int:
    number = int(value)
    if number < low:
        raise argparse.ArgumentTypeError(f"{rule} {low}, got {number}")
    return number


def seed_type(value: str) -> int:
    """A seed: an integer from 0 (as Gymnasium and NumPy take them)."""
    return _integer_from(value, 0, "a seed is an integer from")


def positive_int(value: str) -> int:
    """A count: an integer from 1."""
    return _integer_from(value, 1, "must be at least")


def positive_number(value: str) -> float:
    """A finite number above 0 (seconds, cores)."""
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return number


def non_negative_int(value: str) -> int:
    """An integer from 0 (pixels)."""
    return _integer_from(value, 0, "must be an integer from")


def non_negative_number(value: str) -> float:
    """A finite number from 0 (a weight)."""
    number = float(value)
    if not (math.isfinite(number) and number >= 0):
        raise argparse.ArgumentTypeError(f"must be a number from 0, got {value}")
    return number


def finite_number(value: str) -> float:
    """Any finite number (a coordinate)."""
    number = float(value)
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {value}")
    return number


def fraction(value: str) -> float:
    """A number from 0 to 1 (a success rate)."""
    number = float(value)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {value}")
    return number
