"""Domain randomisation: named groups of seeded draws that make each episode look and behave a
little differently, as a real robot, camera and operating room would.

``gymnasium.make(ID, randomize="appearance,control")`` (or ``"all"``) turns groups on; their
ranges come from ``configs/randomize.yaml`` or a copy the user edits (``randomize_config=PATH``).
Groups and what each changes (nothing else):

- ``appearance``: the images: tissue texture, colours, light, camera intrinsics, lens
  distortion, sensor noise and blur, and the camera's pose on the endoscope (jitter of its mount,
  unknown to the ECM's model): what is defined in the camera's frame (EndoscopeTrack's lesion)
  follows the real camera too.
- ``kinematics``: where the arms really are versus what their joints report (joint, insertion and
  wrist-coupling errors, RCM shift and base registration). The world (contacts, grasps, success)
  follows the true arm; the observation and the controllers use the arm's kinematic model, as a
  robot's do. Scripted experts close the loop on the true tip (privileged state).
- ``control``: latency of whole steps, action noise, control-period jitter.
- ``observation``: noise on ``obs["observation"]``.

Every draw comes from a generator spawned from the env's seed (not from the task's draws), so
the same seed gives the same randomised episode, and turning a group on leaves the task's own
draws (goals, layouts) as they were.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from surgisim.envs.appearance import LIGHT_AZIMUTH_DEG, LIGHT_ELEVATION_DEG, Light, light_direction
from surgisim.envs.documents import excerpt, read_yaml, shorten
from surgisim.envs.robots import ArmError
from surgisim.envs.scene import Look
from surgisim.envs.transforms import make_pose, rotation_from_vector

# Per group, each key: whether it is drawn as an integer, and the lowest and highest value that
# keeps the simulation meaningful (a file's range must lie within them).
KEYS: dict[str, dict[str, tuple[bool, float, float]]] = {
    "appearance": {
        "tissue_texture": (True, 0, 1_000_000), "tint": (False, 0.0, 2.0), "light_azimuth_deg": (False, -360.0, 360.0),
        "light_elevation_deg": (False, 0.0, 90.0), "light_color": (False, 0.0, 2.0), "light_ambient": (False, 0.0, 2.0),
        "light_diffuse": (False, 0.0, 2.0), "light_specular": (False, 0.0, 2.0), "fov_deg": (False, 20.0, 120.0),
        "camera_shift_mm": (False, 0.0, 20.0), "camera_tilt_deg": (False, 0.0, 30.0),
        "lens_distortion_k1": (False, -0.5, 0.5), "image_noise_std": (False, 0.0, 64.0),
        "blur_sigma_px": (False, 0.0, 8.0),
    },
    "kinematics": {
        "joint_offset_deg": (False, -10.0, 10.0), "insertion_offset_mm": (False, -20.0, 20.0),
        "wrist_coupling": (False, -0.5, 0.5), "rcm_shift_mm": (False, 0.0, 20.0),
        "registration_deg": (False, 0.0, 20.0),
    },
    "control": {"latency_steps": (True, 0, 10), "action_noise_std": (False, 0.0, 1.0),
                "period_jitter": (False, -0.5, 0.5)},
    "observation": {"noise_std_mm": (False, 0.0, 20.0)},
}  # fmt: skip
# Textures one range may draw from: each is made, kept on disk and loaded into PyBullet once.
MAX_TEXTURES = 16
GROUPS = tuple(KEYS)
DEFAULT_CONFIG = "randomize.yaml"


def config_path(name: str) -> Path:
    """A YAML file shipped in ``surgisim.configs``."""
    return Path(str(files("surgisim.configs"))) / name


def parse_groups(randomize: Any) -> tuple[str, ...]:
    """The groups of a ``randomize`` argument: None, a comma-separated string (``"all"`` for every
    group) or a sequence of names; a ``ValueError`` names one that is not a group."""
    if randomize is None or randomize == "":
        return ()
    if not isinstance(randomize, str | list | tuple):
        raise ValueError(f"randomize={excerpt(randomize)}: give group names, e.g. 'appearance,kinematics' or 'all'")
    names = randomize.split(",") if isinstance(randomize, str) else list(randomize)
    names = [str(name).strip() for name in names]
    if names == ["all"]:
        return GROUPS
    if "all" in names:
        raise ValueError(f"randomize={excerpt(randomize)}: 'all' stands for every group; give it alone")
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        raise ValueError(f"randomize={excerpt(randomize)}: {shorten(', '.join(map(repr, unknown)))} is not a "
                         "randomisation group; "
                         f"use 'all' or some of {', '.join(GROUPS)}")  # fmt: skip
    return tuple(dict.fromkeys(names))


def load_ranges(path: str | Path | None = None) -> dict[str, dict[str, tuple[float, float]]]:
    """Every group's ranges from a randomisation YAML (default: the package's), read strictly
    (``surgisim.envs.documents``) and checked: an unknown group or key, a range that is not two
    finite numbers, one whose high is below its low, one beyond the key's bounds in ``KEYS``, a
    fraction in an integer range or a texture range of over ``MAX_TEXTURES`` raises a
    ``ValueError`` naming the file and the key."""
    if path is not None and not isinstance(path, str | os.PathLike):
        raise ValueError(f"randomize_config={excerpt(path)}: give the path of a YAML file")
    path = Path(path) if path is not None else config_path(DEFAULT_CONFIG)
    document = read_yaml(path, "randomisation config")
    if not isinstance(document, dict):
        raise ValueError(f"{path}: a randomisation config maps groups ({', '.join(GROUPS)}) to their ranges")
    ranges: dict[str, dict[str, tuple[float, float]]] = {}
    for group, entries in document.items():
        if group not in KEYS:
            raise ValueError(f"{path}: {shorten(repr(group))} is not a randomisation group; the groups are "
                             f"{', '.join(GROUPS)}")  # fmt: skip
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: {group}: expected keys with [low, high] ranges, got {excerpt(entries)}")
        ranges[group] = {}
        for key, value in entries.items():
            ranges[group][key] = _checked_range(path, group, key, value)
    return ranges


def _checked_range(path: Path, group: str, key: str, value: Any) -> tuple[float, float]:
    where = f"{path}: {group}.{key}"
    if key not in KEYS[group]:
        raise ValueError(f"{path}: {group}.{shorten(str(key))} is not a key of {group}; its keys are "
                         f"{', '.join(KEYS[group])}")  # fmt: skip
    integer, lowest, highest = KEYS[group][key]
    numbers = value if isinstance(value, list) else [value]
    if len(numbers) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
        raise ValueError(f"{where}: {excerpt(value)} is not a range [low, high] of two numbers")
    low, high = float(numbers[0]), float(numbers[1])
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{where}: {excerpt(value)} is not finite")
    if high < low:
        raise ValueError(f"{where}: {excerpt(value)} is a negative range (high below low)")
    if low < lowest or high > highest:
        raise ValueError(f"{where}: {excerpt(value)} goes beyond [{lowest:g}, {highest:g}], the values that keep "
                         "the simulation meaningful")  # fmt: skip
    if integer and not (low.is_integer() and high.is_integer()):
        raise ValueError(f"{where}: {excerpt(value)} must be whole numbers")
    if key == "tissue_texture" and high - low + 1 > MAX_TEXTURES:
        raise ValueError(f"{where}: {excerpt(value)} names {high - low + 1:g} textures; at most {MAX_TEXTURES}")
    return low, high


@dataclass
class Episode:
    """One episode's draws: how it looks, each arm's kinematic error, the control latency and the
    noise levels that apply every step."""

    look: Look = field(default_factory=Look)
    arm_errors: dict[str, ArmError] = field(default_factory=dict)
    latency_steps: int = 0
    action_noise_std: float = 0.0
    period_jitter: tuple[float, float] = (0.0, 0.0)
    observation_noise_m: float = 0.0
    lens_distortion_k1: float = 0.0
    image_noise_std: float = 0.0
    blur_sigma_px: float = 0.0


class Disturbances:
    """What the ``control`` and ``observation`` groups do to each step: the action the robot carries
    out (the one given ``latency_steps`` before, holding still until there is one, with noise), how
    much its motion is scaled by the control period's jitter, and noise on the state observation.
    Draws come from the env's randomisation generator."""

    def __init__(self) -> None:
        self.pending: list[np.ndarray] = []  # actions given but not yet carried out (latency)

    def executed(self, action: np.ndarray, hold: Callable[[], np.ndarray], episode: Episode,
                 rng: np.random.Generator) -> tuple[np.ndarray, float]:  # fmt: skip
        """The action carried out this step and the motion scale; ``hold()`` is the action that
        keeps the arms where they are."""
        if episode.latency_steps:
            self.pending.append(action)
            action = hold() if len(self.pending) <= episode.latency_steps else self.pending.pop(0)
        if episode.action_noise_std:
            action = np.clip(action + rng.normal(0.0, episode.action_noise_std, action.shape), -1.0, 1.0)
        scale = 1.0
        if episode.period_jitter != (0.0, 0.0):
            scale += float(rng.uniform(*episode.period_jitter))
        return action, scale

    def observed(self, state: np.ndarray, episode: Episode, rng: np.random.Generator) -> np.ndarray:
        """The state observation as the robot reports it, with the episode's noise."""
        if not episode.observation_noise_m:
            return state
        return (state + rng.normal(0.0, episode.observation_noise_m, state.shape)).astype(np.float32)


class Randomizer:
    """Draws an ``Episode`` for the groups turned on, from the ranges of a config."""

    def __init__(self, randomize: Any = None, config: str | None = None) -> None:
        self.groups = parse_groups(randomize)
        if config is not None and not self.groups:
            raise ValueError(f"randomize_config={excerpt(config)} does nothing without randomize: name the groups "
                             "to randomise (randomize='all' or some of " + ", ".join(GROUPS) + ")")  # fmt: skip
        all_ranges = load_ranges(config) if self.groups else {}
        self.ranges = {group: all_ranges.get(group, {}) for group in self.groups}

    def _draw(self, rng: np.random.Generator, group: str, key: str, default: float, size: int | None = None) -> Any:
        if key not in self.ranges.get(group, {}):
            return default if size is None else np.full(size, default)
        low, high = self.ranges[group][key]
        if KEYS[group][key][0]:
            return int(rng.integers(int(low), int(high) + 1))
        return float(rng.uniform(low, high)) if size is None else rng.uniform(low, high, size)

    def episode(self, rng: np.random.Generator, arms: dict[str, Any]) -> Episode:
        """A new episode's draws (``arms``: name -> arm, for their joint counts)."""
        episode = Episode()
        if "appearance" in self.groups:
            episode.look = self._look(rng)
            episode.lens_distortion_k1 = self._draw(rng, "appearance", "lens_distortion_k1", 0.0)
            episode.image_noise_std = self._draw(rng, "appearance", "image_noise_std", 0.0)
            episode.blur_sigma_px = self._draw(rng, "appearance", "blur_sigma_px", 0.0)
        if "kinematics" in self.groups:
            episode.arm_errors = {name: self._arm_error(rng, len(arm.q)) for name, arm in arms.items()}
        if "control" in self.groups:
            episode.latency_steps = self._draw(rng, "control", "latency_steps", 0)
            episode.action_noise_std = self._draw(rng, "control", "action_noise_std", 0.0)
            episode.period_jitter = self.ranges["control"].get("period_jitter", (0.0, 0.0))
        if "observation" in self.groups:
            episode.observation_noise_m = self._draw(rng, "observation", "noise_std_mm", 0.0) / 1000.0
        return episode

    def _look(self, rng: np.random.Generator) -> Look:
        nominal = Look()

        def draw(key: str, default: float, size: int | None = None) -> Any:
            return self._draw(rng, "appearance", key, default, size)

        direction = light_direction(draw("light_azimuth_deg", LIGHT_AZIMUTH_DEG),
                                    draw("light_elevation_deg", LIGHT_ELEVATION_DEG))  # fmt: skip
        light = Light(direction, tuple(draw("light_color", 1.0, 3)), draw("light_ambient", nominal.light.ambient),
                      draw("light_diffuse", nominal.light.diffuse),
                      draw("light_specular", nominal.light.specular))  # fmt: skip
        shift = _random_direction(rng) * draw("camera_shift_mm", 0.0) / 1000.0
        tilt = _random_direction(rng) * np.deg2rad(draw("camera_tilt_deg", 0.0))
        return Look(
            tissue_texture=draw("tissue_texture", 0),
            tint=draw("tint", 1.0, 3),
            light=light,
            fov_deg=draw("fov_deg", nominal.fov_deg),
            camera_jitter=make_pose(rotation_from_vector(tilt), shift),
        )

    def _arm_error(self, rng: np.random.Generator, joints: int) -> ArmError:
        def draw(key: str, size: int | None = None) -> Any:
            return self._draw(rng, "kinematics", key, 0.0, size)

        offsets = np.deg2rad(draw("joint_offset_deg", joints))
        offsets[2] = draw("insertion_offset_mm") / 1000.0  # every arm's third joint is its insertion
        shift = _random_direction(rng) * draw("rcm_shift_mm") / 1000.0
        turn = _random_direction(rng) * np.deg2rad(draw("registration_deg"))
        coupling = draw("wrist_coupling") if joints > 4 else 0.0
        return ArmError(offsets, coupling, make_pose(rotation_from_vector(turn), shift))


def _random_direction(rng: np.random.Generator) -> np.ndarray:
    vector = rng.standard_normal(3)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
