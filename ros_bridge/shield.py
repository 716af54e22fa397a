"""The safety shield: between a policy and the robot, whatever the transport.

It watches what the robot reports and decides, tick by tick, whether a proposed tool-tip
set-point may leave, and in what form:

- commands leave only while the robot reports ``ENABLED`` and homed (profiles without an
  operating state, such as ros2_control, need only fresh joint states); ``FAULT`` also gets a
  ``hold``;
- a watchdog on the age of the latest accepted joint state: stale means no command and a
  ``hold``;
- incoming joint states with NaN or inf, the wrong joint count or names, or a stamp older than
  the last accepted one are rejected and counted (and do not refresh the watchdog);
- the set-point is moved from the measured pose at most ``max_speed`` (m/s) and turned at most
  ``max_angular_speed`` (rad/s), the jaw at most ``max_jaw_speed`` (rad/s), each times the tick
  ``period`` (s);
- it must lie in the workspace box and insertion range around the RCM (the arm's base frame),
  else nothing leaves;
- a policy output with NaN is refused with a ``hold``.

Every refusal is counted by reason in ``counts``, every clip in ``clips``, and each is logged
when its reason changes (refusals as warnings, clips as info), so that a disabled arm does not
flood the log at 100 Hz.
Poses are 4x4 matrices in the arm's base frame (its RCM at the origin), as in ``measured_cp``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from surgisim.envs.documents import excerpt, is_number, read_yaml
from surgisim.envs.kinematics import JAW_LIMITS
from surgisim.envs.transforms import rotation_from_vector, rotation_vector
from surgisim.ros_bridge.messages import OPERATING_STATES, stamp_seconds

LOG = logging.getLogger("surgisim.ros.shield")


# Each limit's range, its unit, and how many numbers it holds (0: one number). The upper bounds
# keep a real arm safe whatever a limits file says: the PSM reaches about 0.24 m from its RCM, and
# the policies were trained at up to 0.05 m/s and 1 rad/s.
LIMIT_RANGES: dict[str, tuple[float, float, str, int]] = {
    "box_low": (-0.3, 0.3, "m", 3),
    "box_high": (-0.3, 0.3, "m", 3),
    "insertion": (0.0, 0.25, "m", 2),
    "max_speed": (0.0, 0.2, "m/s", 0),
    "max_angular_speed": (0.0, 3.0, "rad/s", 0),
    "max_jaw_speed": (0.0, 5.0, "rad/s", 0),
    "state_timeout": (0.0, 1.0, "s", 0),
}


@dataclass(frozen=True)
class ShieldLimits:
    """Limits, in the arm's base frame (metres, radians, seconds); ranges in ``LIMIT_RANGES``.
    A value of the wrong type or length, or out of range, is a ``ValueError`` naming it."""

    box_low: tuple[float, float, float] = (-0.10, -0.10, -0.20)
    box_high: tuple[float, float, float] = (0.10, 0.10, -0.02)
    insertion: tuple[float, float] = (0.03, 0.20)  # tip distance from the RCM
    max_speed: float = 0.05  # m/s of the set-point's position: the policies' trained top speed
    max_angular_speed: float = 1.0  # rad/s
    max_jaw_speed: float = 2.0  # rad/s
    state_timeout: float = 0.1  # watchdog on the latest joint state

    def __post_init__(self) -> None:
        for name, (low, high, unit, count) in LIMIT_RANGES.items():
            value = getattr(self, name)
            if count and (not isinstance(value, list | tuple) or len(value) != count):
                raise ValueError(f"{name} must be a list of {count} numbers ({unit}), got {excerpt(value)}")
            values = value if count else [value]
            if not all(map(is_number, values)):
                raise ValueError(f"{name} must hold finite numbers ({unit}), not {excerpt(value)}")
            if not all(low <= number <= high for number in values):
                raise ValueError(f"{name} = {excerpt(value)} lies outside {low} to {high} {unit}")
            object.__setattr__(self, name, tuple(map(float, values)) if count else float(value))
        if any(low >= high for low, high in zip(self.box_low, self.box_high, strict=True)):
            raise ValueError(f"box_low {self.box_low} must lie below box_high {self.box_high} on every axis")
        if not self.insertion[0] < self.insertion[1]:
            raise ValueError(f"insertion range {self.insertion} must be increasing")
        if min(self.max_speed, self.max_angular_speed, self.max_jaw_speed, self.state_timeout) <= 0:
            raise ValueError("max_speed, max_angular_speed, max_jaw_speed and state_timeout must be positive")


def load_limits(path: Path | None) -> ShieldLimits:
    """Shield limits from a YAML file of ``ShieldLimits`` fields (the others keep their defaults);
    a ``ValueError`` naming the file and the field when one is unknown, given twice or invalid."""
    if path is None:
        return ShieldLimits()
    values = read_yaml(path, "shield limits")
    values = {} if values is None else values
    known = {item.name for item in fields(ShieldLimits)}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of shield limits ({', '.join(sorted(known))})")
    unknown = sorted(map(str, set(values) - known))
    if unknown:
        raise ValueError(f"{path}: unknown shield limits {excerpt(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return ShieldLimits(**values)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


@dataclass
class Decision:
    """What may leave this tick: a pose and jaw, or nothing (``reason`` says why), and whether
    to send ``hold``."""

    pose: np.ndarray | None = None
    jaw: float | None = None
    hold: bool = False
    reason: str = ""
    clipped: list[str] = field(default_factory=list)  # what was clipped to let it leave


@dataclass
class SafetyShield:
    limits: ShieldLimits = field(default_factory=ShieldLimits)
    period: float = 0.01  # s per tick: the per-tick limits are the speeds times this
    source: str = "the joint-state topic"  # where joint states come from, for messages
    joint_schemes: tuple[tuple[str, ...], ...] = ()  # the joint-name lists accepted (e.g. dVRK 2.2 and 2.3)
    names: tuple[str, ...] | None = None  # the joint names the robot uses, once it has sent them
    requires_operating_state: bool = True
    counts: Counter = field(default_factory=Counter)  # refusals by reason
    clips: Counter = field(default_factory=Counter)  # clipped set-points by what was clipped
    state: str = "DISABLED"
    homed: bool = False
    joints: np.ndarray | None = None
    jaw: float | None = None
    last_stamp: float = -np.inf
    last_state_time: float = -np.inf  # local clock of the latest accepted joint state
    last_reason: str = ""
    last_clip: str = ""

    def _refuse(self, kind: str, detail: str = "") -> bool:
        """Count a refusal under ``kind``; log it (with ``detail``) when the kind changes."""
        self.counts[kind] += 1
        if kind != self.last_reason:
            LOG.warning("refused: %s%s", kind, f" ({detail})" if detail else "")
            self.last_reason = kind
        return False

    def _refusal(self, kind: str, detail: str = "", hold: bool = False) -> Decision:
        """A counted refusal as this tick's decision."""
        self._refuse(kind, detail)
        return Decision(hold=hold, reason=kind)

    def accept_joint_state(self, message: object, now: float) -> bool:
        """Take a measured joint state (``sensor_msgs/JointState``) if it is sound."""
        positions = np.asarray(message.position, dtype=np.float64)
        count = len(self.joint_schemes[0]) if self.joint_schemes else 0
        if positions.shape != (count,):
            return self._refuse("joint state: wrong joint count", f"{positions.size}, expected {count}")
        names = tuple(message.name)
        if names and names not in self.joint_schemes:
            expected = " or ".join(str(list(scheme)) for scheme in self.joint_schemes)
            return self._refuse("joint state: wrong joint names", f"{list(names)}, expected {expected}")
        if not np.all(np.isfinite(positions)):
            return self._refuse("joint state: NaN or inf")
        stamp = stamp_seconds(message)
        if stamp < self.last_stamp:
            return self._refuse("joint state: out of order", f"stamped {stamp:.6f}, after {self.last_stamp:.6f}")
        self.joints, self.last_stamp, self.last_state_time = positions, stamp, now
        self.names = names or self.names
        return True

    def accept_jaw_state(self, message: object) -> bool:
        positions = np.asarray(message.position, dtype=np.float64)
        if positions.shape != (1,) or not np.isfinite(positions[0]):
            return self._refuse("jaw state: not one finite angle", str(positions.tolist()))
        self.jaw = float(positions[0])
        return True

    def accept_operating_state(self, message: object) -> bool:
        if message.state not in OPERATING_STATES:
            return self._refuse("operating state: unknown", repr(message.state))
        self.state, self.homed = message.state, bool(message.is_homed)
        return True

    def ready(self, now: float) -> Decision | None:
        """``None`` when commands may leave now, else the refusal (with ``hold`` when state is stale)."""
        if self.joints is None:
            return self._refusal("no joint states received", f"nothing accepted on {self.source}", hold=True)
        if self.requires_operating_state and (self.state != "ENABLED" or not self.homed):
            detail = f"{self.state}, {'homed' if self.homed else 'not homed'}"
            return self._refusal("robot not enabled and homed", detail, hold=self.state == "FAULT")  # FAULT: hold
        if now - self.last_state_time > self.limits.state_timeout:
            return self._refusal("stale joint state", f"{(now - self.last_state_time) * 1000:.0f} ms old", hold=True)
        return None

    def limit(self, measured: np.ndarray, target: np.ndarray, jaw: float | None) -> Decision:
        """The set-point within the per-tick steps, workspace box and insertion range (call
        ``ready`` first, as the runner does each tick)."""
        if not np.all(np.isfinite(target)) or (jaw is not None and not np.isfinite(jaw)):
            return self._refusal("set-point: NaN or inf", hold=True)
        limits, period, clipped = self.limits, self.period, []
        pose = target.copy()
        step = pose[:3, 3] - measured[:3, 3]
        distance, most = float(np.linalg.norm(step)), limits.max_speed * period
        if distance > most:
            pose[:3, 3] = measured[:3, 3] + step * (most / distance)
            clipped.append(self._clipped("speed", f"{distance / period:.3f} m/s to {limits.max_speed:.3f} m/s"))
        turn = rotation_vector(measured[:3, :3].T @ pose[:3, :3])
        angle, most = float(np.linalg.norm(turn)), limits.max_angular_speed * period
        if angle > most:
            pose[:3, :3] = measured[:3, :3] @ rotation_from_vector(turn * (most / angle))
            detail = f"{angle / period:.2f} rad/s to {limits.max_angular_speed:.2f} rad/s"
            clipped.append(self._clipped("angular speed", detail))
        if jaw is not None:
            jaw, most = float(np.clip(jaw, *JAW_LIMITS)), limits.max_jaw_speed * period
            if self.jaw is not None and abs(jaw - self.jaw) > most:
                speed = abs(jaw - self.jaw) / period
                clipped.append(self._clipped("jaw speed", f"{speed:.2f} rad/s to {limits.max_jaw_speed:.2f} rad/s"))
                jaw = self.jaw + float(np.sign(jaw - self.jaw)) * most
        position = pose[:3, 3]
        if np.any(position < limits.box_low) or np.any(position > limits.box_high):
            return self._refusal("set-point: outside the workspace box", f"{np.round(position * 1000, 1).tolist()} mm")
        radius = float(np.linalg.norm(position))
        if not limits.insertion[0] <= radius <= limits.insertion[1]:
            return self._refusal("set-point: outside the insertion range", f"{radius * 1000:.1f} mm from the RCM")
        return Decision(pose=pose, jaw=jaw, clipped=clipped)

    def _clipped(self, kind: str, detail: str) -> str:
        """Count a clip under ``kind``; log it (with ``detail``) when the kind changes."""
        self.clips[kind] += 1
        if kind != self.last_clip:
            LOG.info("clipped: %s (%s)", kind, detail)
            self.last_clip = kind
        return kind
