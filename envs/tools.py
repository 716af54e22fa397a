"""dVRK instruments as data: the dVRK's own tool definition files, and the PSM kinematics they give.

A tool file (sawIntuitiveResearchKit ``share/tool/<NAME>.json``: JSON with ``//`` and ``/* */``
comments) holds the modified-DH rows of the tool's three joints (roll, wrist pitch, wrist yaw),
the jaw limits and a ``tooltip-offset`` (older files) or ``tooltip_offset`` (newer) matrix. With
the PSM's first three rows they give the arm's kinematics: the dVRK reports
``measured_cp = FK(q) @ tooltip_offset``. For every shipped tool that matrix is a rotation only,
so ``measured_cp`` sits on the wrist-yaw axis (the jaw pivot), not at the jaw tips.

The point tasks score, the **jaw tips**, is surgisim's own addition: ``jaw_tip`` (10.2 mm) along
the ``measured_cp`` frame's z axis (the jaw axis). ``Tool.cp`` gives the dVRK's pose, ``Tool.tip``
the jaw tips. S/Si tools (420xxx) have a longer shaft (roll row D = 0.4670 instead of 0.4162).

Shipped definitions are in ``surgisim/assets/tools``; ``load_tool`` takes their name or a path to
a user's file. The closed-form IK needs the standard PSM wrist (the dVRK's alphas and offsets of
0, -pi/2, -pi/2; the files round pi/2 to 1.5708, read here as pi/2); a file with another wrist,
or a missing, non-numeric or out-of-bounds field (``SHAFT_D_RANGE`` and the others below), is a
``ValueError`` naming the file and the field. Files are read by ``surgisim.envs.documents``: a
key given twice, an oversized file or one that is not a regular file is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from surgisim.envs.documents import excerpt, read_json
from surgisim.envs.kinematics import (
    PI,
    PSM_ARM_DH,
    DHRow,
    forward_kinematics,
    rot_x,
    rot_z,
    shaft_angles,
    wrap_angle,
)

DEFAULT_TOOL = "LARGE_NEEDLE_DRIVER_400006"
JAW_TIP = 0.0102  # m from the jaw pivot (measured_cp) to the jaw tips, along the jaws
# The tool joints as surgisim names them (the URDF's); files use these or, from dVRK 2.3, the
# same without "outer_".
TOOL_JOINTS = ("outer_roll", "outer_wrist_pitch", "outer_wrist_yaw")
# The standard PSM wrist: (alpha, A of the row, theta offset, D) that the IK relies on; None: any value.
_WRIST = ((0.0, 0.0, 0.0, None), (-PI / 2, 0.0, -PI / 2, 0.0), (-PI / 2, None, -PI / 2, 0.0))
_QUARTER_TURN_ROUNDING = 1e-4  # the files write pi/2 as 1.5708
# Bounds that keep a tool a da Vinci instrument on a PSM (the dVRK's 50 tool files lie well inside):
# the roll row's D (shaft, m; 0.4024-0.4670), the wrist-yaw row's A (pitch to yaw axis, m; 0-0.0112),
# each joint's limits (rad; roll 260 degrees, the wrist 90), the jaw's (rad; -40 to 80 degrees) and
# the tooltip offset's translation (m; 0 in every file of a standard wrist).
SHAFT_D_RANGE = (0.35, 0.55)
WRIST_A_RANGE = (0.0, 0.02)
JOINT_LIMIT = (2 * PI, PI / 2 + 0.01, PI / 2 + 0.01)
JAW_LIMIT = PI / 2 + 0.01
TOOLTIP_TRANSLATION_MAX = 0.05


def tools_folder() -> Path:
    return Path(str(files("surgisim.assets"))) / "tools"


def shipped_tools() -> list[str]:
    """Names of the tool definitions shipped with the package."""
    return sorted(path.stem for path in tools_folder().glob("*.json"))


@dataclass(frozen=True, eq=False)
class Tool:
    """A PSM instrument: its three DH rows, jaw limits (rad), and ``tooltip_offset`` (4x4)."""

    name: str
    rows: tuple[DHRow, DHRow, DHRow]
    jaw_limits: tuple[float, float]
    tooltip_offset: np.ndarray
    jaw_tip: float = JAW_TIP

    @property
    def dh(self) -> tuple[DHRow, ...]:
        """All six rows of the PSM with this tool."""
        return (*PSM_ARM_DH, *self.rows)

    @property
    def lower(self) -> np.ndarray:
        return np.array([row.lower for row in self.dh])

    @property
    def upper(self) -> np.ndarray:
        return np.array([row.upper for row in self.dh])

    @property
    def tip_offset(self) -> np.ndarray:
        """The jaw-tip frame in the wrist-yaw (last DH) frame."""
        return self.tooltip_offset @ _translation_z(self.jaw_tip)

    @property
    def wrist_offset(self) -> float:
        """The wrist-pitch axis lies this far plus the insertion from the RCM, along the shaft."""
        return PSM_ARM_DH[2].d + self.rows[0].d

    @property
    def straight_tip_offset(self) -> float:
        """With the wrist straight, the jaw tips lie this far plus the insertion from the RCM."""
        return self.wrist_offset + self.rows[2].a + float(self.tip_offset[1, 3])

    def cp(self, q: np.ndarray) -> np.ndarray:
        """``measured_cp`` as a dVRK reports it for joints ``q``: a 4x4 pose in the RCM frame."""
        return forward_kinematics(self.dh, q)[-1] @ self.tooltip_offset

    def tip(self, q: np.ndarray) -> np.ndarray:
        """The jaw-tip pose (4x4, RCM frame) for joints ``q``: the point the tasks score."""
        return forward_kinematics(self.dh, q)[-1] @ self.tip_offset

    def tip_from_cp(self, cp: np.ndarray) -> np.ndarray:
        return cp @ _translation_z(self.jaw_tip)

    def cp_from_tip(self, tip: np.ndarray) -> np.ndarray:
        return tip @ _translation_z(-self.jaw_tip)

    def ik(self, tip_pose: np.ndarray, q_ref: np.ndarray | None = None) -> np.ndarray:
        """Closed-form inverse kinematics: six joint values that put the jaw tips at ``tip_pose``.

        The wrist-yaw frame follows from the tip pose; the pitch-to-yaw link is perpendicular to
        the yaw axis and coplanar with the shaft, which fixes the wrist-pitch point on the shaft
        line through the RCM. Yaw, pitch and insertion follow from that point, the wrist angles
        from the remaining rotation. Of the tool-roll values equal modulo 2 pi, the one nearest
        ``q_ref[3]`` (or zero) is returned. Joint limits are not applied here.
        """
        yaw_frame = tip_pose @ np.linalg.inv(self.tip_offset)
        p6, z6, x6 = yaw_frame[:3, 3], yaw_frame[:3, 2], yaw_frame[:3, 0]
        perpendicular = p6 - np.dot(p6, z6) * z6
        u = perpendicular / np.linalg.norm(perpendicular)  # x5: pitch point -> yaw point
        p4 = p6 - self.rows[2].a * u
        distance = float(np.linalg.norm(p4))
        q1, q2 = shaft_angles(p4 / distance)
        q3 = distance - self.wrist_offset
        frame3 = forward_kinematics(PSM_ARM_DH, np.array([q1, q2, q3]))[-1][:3, :3]
        z5_in_3 = frame3.T @ np.cross(u, z6)
        q4 = float(np.arctan2(-z5_in_3[0], z5_in_3[1]))
        if q_ref is not None:
            q4 += 2 * PI * np.round((q_ref[3] - q4) / (2 * PI))
        frame4 = frame3 @ rot_z(q4)
        x5_in_4 = frame4.T @ u
        q5 = float(np.arctan2(-x5_in_4[2], x5_in_4[0])) + PI / 2
        frame5 = frame4 @ rot_x(-PI / 2) @ rot_z(q5 - PI / 2)
        x6_in_5 = frame5.T @ x6
        q6 = float(np.arctan2(-x6_in_5[2], x6_in_5[0])) + PI / 2
        return np.array([q1, q2, q3, q4, wrap_angle(q5), wrap_angle(q6)])


def _translation_z(distance: float) -> np.ndarray:
    pose = np.eye(4)
    pose[2, 3] = distance
    return pose


@cache
def load_tool(name_or_path: str) -> Tool:
    """A shipped tool by name (``LARGE_NEEDLE_DRIVER_420006``) or a dVRK tool file by path."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = tools_folder() / f"{name_or_path}.json"
        if not path.is_file():
            shipped = ", ".join(shipped_tools())
            raise ValueError(f"unknown tool {name_or_path!r}; shipped: {shipped}, or give a dVRK tool .json file")
    return _parse(read_json(path, "tool file", comments=True), path)


def _number(value: Any, path: Path, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ValueError(f"{path}: {field} must be a finite number, not {excerpt(value)}")
    return float(value)


def _field(data: Any, key: str, path: Path, where: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise ValueError(f"{path}: {where}{key} is missing")
    return data[key]


def _angle(value: float) -> float:
    """A DH angle, with the files' 1.5708 read as the pi/2 it stands for."""
    quarter_turns = round(value / (PI / 2))
    return quarter_turns * PI / 2 if abs(value - quarter_turns * PI / 2) < _QUARTER_TURN_ROUNDING else value


def _parse(data: Any, path: Path) -> Tool:
    dh = _field(data, "DH", path, "")
    if _field(dh, "convention", path, "DH.") != "modified":
        raise ValueError(f"{path}: DH.convention must be 'modified'")
    joints = _field(dh, "joints", path, "DH.")
    if not isinstance(joints, list) or len(joints) != 3:
        raise ValueError(f"{path}: DH.joints must list the tool's 3 joints (roll, wrist pitch, wrist yaw)")
    rows = []
    for index, (joint, name, wrist) in enumerate(zip(joints, TOOL_JOINTS, _WRIST, strict=True)):
        where = f"DH.joints[{index}]."
        names = (name, name.removeprefix("outer_"))
        if _field(joint, "name", path, where) not in names:
            raise ValueError(f"{path}: {where}name is {excerpt(joint['name'])}, expected {' or '.join(names)}")
        if _field(joint, "type", path, where) != "revolute":
            raise ValueError(f"{path}: {where}type must be 'revolute'")
        values = {key: _number(_field(joint, key, path, where), path, where + key)
                  for key in ("alpha", "A", "theta", "D", "offset", "qmin", "qmax")}  # fmt: skip
        alpha, theta = _angle(values["alpha"]), _angle(values["theta"] + values["offset"])
        for key, got, expected in zip(("alpha", "A", "offset", "D"), (alpha, values["A"], theta, values["D"]), wrist,
                                      strict=True):  # fmt: skip
            if expected is not None and abs(got - expected) > 1e-9:
                raise ValueError(f"{path}: {where}{key} = {got:.6g}: surgisim's closed-form IK needs the standard "
                                 f"PSM wrist ({key} {expected:.6g})")  # fmt: skip
        if not values["qmin"] < values["qmax"]:
            raise ValueError(f"{path}: {where}qmin must lie below qmax")
        if max(-values["qmin"], values["qmax"]) > JOINT_LIMIT[index]:
            raise ValueError(f"{path}: {where}qmin and qmax must lie within +-{JOINT_LIMIT[index]:.4g} rad")
        bounds = {0: ("D", SHAFT_D_RANGE), 2: ("A", WRIST_A_RANGE)}.get(index)
        if bounds is not None and not bounds[1][0] <= values[bounds[0]] <= bounds[1][1]:
            key, (low, high) = bounds
            raise ValueError(f"{path}: {where}{key} = {values[key]:.6g} m is not a PSM instrument's "
                             f"(from {low:g} to {high:g} m)")  # fmt: skip
        rows.append(DHRow(name, "R", alpha, values["A"], theta, values["D"], values["qmin"], values["qmax"]))
    jaw = _field(data, "jaw", path, "")
    jaw_limits = (_number(_field(jaw, "qmin", path, "jaw."), path, "jaw.qmin"),
                  _number(_field(jaw, "qmax", path, "jaw."), path, "jaw.qmax"))  # fmt: skip
    if not jaw_limits[0] < jaw_limits[1]:
        raise ValueError(f"{path}: jaw.qmin must lie below jaw.qmax")
    if max(-jaw_limits[0], jaw_limits[1]) > JAW_LIMIT:
        raise ValueError(f"{path}: jaw.qmin and jaw.qmax must lie within +-{JAW_LIMIT:.4g} rad")
    key = "tooltip_offset" if "tooltip_offset" in data else "tooltip-offset"
    matrix = _field(data, key, path, "")
    try:
        offset = np.array(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        offset = np.zeros(0)
    rigid = (
        offset.shape == (4, 4)
        and np.all(np.isfinite(offset))
        and np.allclose(offset[:3, :3] @ offset[:3, :3].T, np.eye(3), atol=1e-6)
        and np.isclose(np.linalg.det(offset[:3, :3]), 1.0, atol=1e-6)
        and np.allclose(offset[3], [0, 0, 0, 1])
    )
    if not rigid:
        raise ValueError(f"{path}: {key} must be a 4x4 rigid transform (a rotation and a translation)")
    if np.linalg.norm(offset[:3, 3]) > TOOLTIP_TRANSLATION_MAX:
        raise ValueError(f"{path}: {key} moves the tool tip {np.linalg.norm(offset[:3, 3]):.4g} m; at most "
                         f"{TOOLTIP_TRANSLATION_MAX:g} m")  # fmt: skip
    return Tool(path.stem, tuple(rows), jaw_limits, offset)


def default_tool() -> Tool:
    return load_tool(DEFAULT_TOOL)


__all__ = ["DEFAULT_TOOL", "JAW_TIP", "Tool", "default_tool", "load_tool", "shipped_tools"]
