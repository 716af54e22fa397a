"""Assistance: what changes a surgeon's commanded motion before it reaches the arm.

Two kinds, composable in any order within their kind:

- on the signal (the whole registered trajectory, sampled at 100 Hz, before the control steps):
  ``scale`` (motion scaling about the start point) and ``tremor`` (a causal low-pass filter: a
  2nd-order Butterworth at 6 Hz removes the 8-12 Hz physiological tremor band, as a real-time
  filter would, with its lag);
- per control step, on each driven arm's set-point (world tip pose and jaw), knowing the scene:
  ``fixture`` (forbidden-region virtual fixture: keeps the instrument ``margin`` from organ and
  vessel surfaces by removing the motion towards them), ``guide`` (pulls towards the nearest
  point of a reference path), ``policy`` (shared control: blends the set-point with a trained
  policy's) and ``shield`` (the ROS 2 bridge's safety shield, the same code: speeds, workspace
  box, insertion range).

Each mode is an ``Assist`` subclass registered by name in ``ASSISTS`` (``@register``): its numeric
fields are its settings. ``parse_assists("fixture,tremor")`` builds them with their defaults;
``name:key=value`` sets one (``fixture:margin=0.005``, ``scale:factor=0.3``, ``policy:weight=0.7``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from surgisim.agents.evaluate import make_policy
from surgisim.envs.controllers import CONTROL_PERIOD
from surgisim.envs.transforms import rotation_from_vector, rotation_vector

SetPoint = tuple[np.ndarray, float]  # a world tip pose (4x4) and a jaw angle (rad)


@dataclass
class Context:
    """What an assistance may take from the assessment before a replay: the env it runs in, the
    reference's tip path (world, m; ``None`` without a reference), the policy to share control
    with and the shield's limits file."""

    env: Any
    reference: np.ndarray | None = None
    policy: str = "expert"
    limits: Path | None = None


class Assist:
    """One assistance mode: a dataclass whose numeric fields are its settings. A signal mode
    (``on_signal``) filters the whole registered trajectory (``filter``); the others change each
    control step's set-points (``step``), knowing the scene."""

    name: ClassVar[str]
    on_signal: ClassVar[bool] = False

    def prepare(self, context: Context) -> None:
        """Take what it needs before a replay; a ``ValueError`` says what is missing."""

    def filter(self, times: np.ndarray, positions: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def step(self, env: Any, set_points: list[SetPoint]) -> list[SetPoint]:
        raise NotImplementedError

    @classmethod
    def settings(cls) -> list[str]:
        """The settings ``name:key=value`` may give: the dataclass's int and float fields."""
        return [f.name for f in fields(cls) if f.type in ("float", "int", float, int)]  # type: ignore[arg-type]

    def describe(self) -> str:
        """The mode as ``parse_assists`` reads it, with the settings that differ from the defaults."""
        default = type(self)()
        changed = [
            f"{key}={getattr(self, key):g}" for key in self.settings() if getattr(self, key) != getattr(default, key)
        ]
        return self.name + (":" + ";".join(changed) if changed else "")


ASSISTS: dict[str, type[Assist]] = {}


def register(kind: type[Assist]) -> type[Assist]:
    """Make an assistance mode available by its ``name`` (to ``parse_assists`` and ``--assist``)."""
    ASSISTS[kind.name] = kind
    return kind


@register
@dataclass
class Scale(Assist):
    """Motion scaling: the motion from the start point times ``factor``."""

    name = "scale"
    on_signal = True
    factor: float = 0.5

    def filter(self, times: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return positions[0] + self.factor * (positions - positions[0])


@register
@dataclass
class Tremor(Assist):
    """A causal Butterworth low-pass of ``order`` at ``cutoff_hz`` on the positions."""

    name = "tremor"
    on_signal = True
    cutoff_hz: float = 6.0
    order: int = 2

    def filter(self, times: np.ndarray, positions: np.ndarray) -> np.ndarray:
        from scipy import signal  # the surgeon extra

        rate = 1.0 / float(np.median(np.diff(times)))
        if not 0 < self.cutoff_hz < rate / 2:
            raise ValueError(f"tremor: cutoff {self.cutoff_hz} Hz must lie below half the sample rate ({rate:g} Hz)")
        b, a = signal.butter(self.order, self.cutoff_hz, fs=rate)
        start = signal.lfilter_zi(b, a)[:, None] * positions[0]  # at rest at the start, no transient
        return signal.lfilter(b, a, positions, axis=0, zi=start)[0]


@register
@dataclass
class Fixture(Assist):
    """Forbidden regions around the task's anatomy (organs, vessels): a set-point that would bring
    the instrument closer than ``margin`` (m) is moved out along the surface normal."""

    name = "fixture"
    margin: float = 0.003
    iterations: int = 4

    def step(self, env: Any, set_points: list[SetPoint]) -> list[SetPoint]:
        result = []
        for arm, (pose, jaw) in zip(env.arms, set_points, strict=True):
            saved, pose = arm.q.copy(), pose.copy()
            for _ in range(self.iterations):
                arm.set_joints(arm.ik(pose))
                pushes = [
                    (self.margin - distance) * normal for distance, _, normal in env.clearances(self.margin, arm.name)
                ]
                if not pushes:
                    break
                pose[:3, 3] += max(pushes, key=np.linalg.norm)
            arm.set_joints(saved)
            result.append((pose, jaw))
        return result


@register
@dataclass
class Guide(Assist):
    """Pulls each set-point ``strength`` of the way to the nearest point of ``reference`` (the
    reference trajectory's tip path, world, m)."""

    name = "guide"
    strength: float = 0.5
    reference: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def prepare(self, context: Context) -> None:
        if context.reference is None:
            raise ValueError("guide: pulls towards the reference path; give --reference expert|pretrained|FILE")
        self.reference = context.reference

    def step(self, env: Any, set_points: list[SetPoint]) -> list[SetPoint]:
        if len(self.reference) < 2:
            return set_points
        result = []
        for pose, jaw in set_points:
            pose = pose.copy()
            pose[:3, 3] += self.strength * (nearest_on_path(self.reference, pose[:3, 3]) - pose[:3, 3])
            result.append((pose, jaw))
        return result


@register
@dataclass
class SharedControl(Assist):
    """Shared control: each set-point moves ``weight`` of the way to the policy's (position and
    rotation; the jaw likewise)."""

    name = "policy"
    weight: float = 0.5
    policy: Any = None

    def prepare(self, context: Context) -> None:
        self.policy = make_policy(context.policy, context.env)

    def step(self, env: Any, set_points: list[SetPoint]) -> list[SetPoint]:
        proposed = env.set_points(self.policy(env.observe()))
        result = []
        for (pose, jaw), (other, other_jaw) in zip(set_points, proposed, strict=True):
            blended = pose.copy()
            blended[:3, 3] += self.weight * (other[:3, 3] - pose[:3, 3])
            turn = rotation_vector(pose[:3, :3].T @ other[:3, :3])
            blended[:3, :3] = pose[:3, :3] @ rotation_from_vector(self.weight * turn)
            result.append((blended, jaw if other_jaw is None else jaw + self.weight * (other_jaw - jaw)))
        return result


@register
@dataclass
class Shield(Assist):
    """The ROS 2 bridge's safety shield on each arm (``surgisim.ros_bridge.shield``; limits from
    its ``ShieldLimits``): speeds per control step, workspace box, insertion range. A refused
    set-point holds the arm where it is."""

    name = "shield"
    limits: Any = None

    def prepare(self, context: Context) -> None:
        from surgisim.ros_bridge.shield import load_limits  # the ros extra

        self.limits = load_limits(context.limits)

    def step(self, env: Any, set_points: list[SetPoint]) -> list[SetPoint]:
        from surgisim.ros_bridge.shield import SafetyShield, ShieldLimits  # the ros extra

        result = []
        for arm, (pose, jaw) in zip(env.arms, set_points, strict=True):
            shield = SafetyShield(self.limits or ShieldLimits(), period=CONTROL_PERIOD)
            shield.jaw = arm.jaw
            decision = shield.limit(arm.cp(), arm.cp_from_tip(pose), jaw)
            result.append((arm.tip_pose(), arm.jaw) if decision.pose is None else
                          (arm.tip_from_cp(decision.pose), decision.jaw))  # fmt: skip
        return result


def parse_assists(text: str) -> list[Assist]:
    """``"fixture,tremor:cutoff_hz=5"`` as assistance objects, in order; ``"none"`` or ``""``: none."""
    assists = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item == "none":
            continue
        name, _, settings = item.partition(":")
        if name not in ASSISTS:
            raise ValueError(f"unknown assistance {name!r}; use {', '.join(ASSISTS)} (or none)")
        kind = ASSISTS[name]
        values: dict[str, float] = {}
        for setting in filter(None, settings.split(";")):
            key, _, value = setting.partition("=")
            if key not in kind.settings():
                raise ValueError(f"{name}: unknown setting {key!r}; it has {', '.join(kind.settings()) or 'none'}")
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"{name}: {key}={value!r} is not a number") from None
            if not np.isfinite(number) or number < 0:
                raise ValueError(f"{name}: {key}={value!r} must be a finite number from 0")
            integer = next(f.type for f in fields(kind) if f.name == key) in ("int", int)
            values[key] = int(number) if integer else number
        assists.append(kind(**values))
    return assists


def nearest_on_path(path: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The point of the polyline ``path`` (M, 3) nearest ``point``."""
    starts, ends = path[:-1], path[1:]
    segment = ends - starts
    length = np.maximum(np.einsum("ij,ij->i", segment, segment), 1e-18)
    fraction = np.clip(np.einsum("ij,ij->i", point - starts, segment) / length, 0.0, 1.0)
    candidates = starts + fraction[:, None] * segment
    return candidates[np.argmin(np.linalg.norm(candidates - point, axis=1))]
