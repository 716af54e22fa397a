"""Writes the arm URDFs and low-poly meshes in ``assets/`` from the DH tables in ``kinematics``.

The committed files are this module's output (a test checks that they match), so the simulated
joints sit exactly where the DH model puts them. Regenerate with ``python -m surgisim.envs.urdf_builder``.
Meshes are deliberately coarse: TinyRenderer's cost follows the triangle count.
"""

from __future__ import annotations

import tempfile
from functools import cache
from importlib.resources import files
from pathlib import Path

import numpy as np

from surgisim.envs.files import process_folder
from surgisim.envs.kinematics import (
    ECM_CAMERA_MOUNT,
    ECM_DH,
    JAW_HALF_WIDTH,
    JAW_LENGTH,
    JAW_LIMITS,
    DHRow,
    dh_transform,
    rot_z,
)
from surgisim.envs.tools import DEFAULT_TOOL, Tool, load_tool
from surgisim.envs.transforms import matrix_to_rpy

SHAFT_RADIUS = 0.0042  # 8.4 mm instrument shaft
ENDOSCOPE_RADIUS = 0.005
INSTRUMENT_GREY = "0.55 0.57 0.6 1"
JAW_GREY = "0.3 0.3 0.32 1"
TISSUE_HALF_SIZE = 0.25  # the tissue bed is 50 cm square


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{float(v):.12g}" for v in values)


def _origin(transform: np.ndarray) -> str:
    return f'<origin xyz="{_fmt(transform[:3, 3])}" rpy="{_fmt(matrix_to_rpy(transform[:3, :3]))}"/>'


def _inertial() -> str:
    # Arms are driven kinematically; a small nonzero mass keeps PyBullet's multibody valid.
    return (
        '<inertial><origin xyz="0 0 0"/><mass value="0.01"/>'
        '<inertia ixx="1e-6" ixy="0" ixz="0" iyy="1e-6" iyz="0" izz="1e-6"/></inertial>'
    )


def _shape(kind: str, geometry: str, xyz: tuple[float, float, float], rgba: str | None) -> str:
    material = f'<material name="rgba_{rgba.replace(" ", "_")}"><color rgba="{rgba}"/></material>' if rgba else ""
    return f'<{kind}><origin xyz="{_fmt(np.array(xyz))}"/><geometry>{geometry}</geometry>{material}</{kind}>'


def _prism_link(name: str, radius: float, length: float, z_start: float, rgba: str, meshes: str) -> str:
    """A link carrying an octagonal prism along its z axis (visual) and a cylinder (collision)."""
    centre = (0.0, 0.0, z_start + length / 2)
    mesh = f'<mesh filename="{meshes}/prism8.obj" scale="{radius:.6g} {radius:.6g} {length:.6g}"/>'
    cylinder = f'<cylinder radius="{radius:.6g}" length="{length:.6g}"/>'
    return (
        f'<link name="{name}">{_inertial()}{_shape("visual", mesh, centre, rgba)}'
        f"{_shape('collision', cylinder, centre, None)}</link>"
    )


def _box_link(name: str, size: tuple[float, float, float], centre: tuple[float, float, float], rgba: str) -> str:
    box = f'<box size="{_fmt(np.array(size))}"/>'
    return (
        f'<link name="{name}">{_inertial()}{_shape("visual", box, centre, rgba)}'
        f"{_shape('collision', box, centre, None)}</link>"
    )


def _empty_link(name: str) -> str:
    return f'<link name="{name}">{_inertial()}</link>'


def _joint(row: DHRow, parent: str, child: str) -> str:
    kind = "revolute" if row.joint_type == "R" else "prismatic"
    return (
        f'<joint name="{row.name}" type="{kind}"><parent link="{parent}"/><child link="{child}"/>'
        f'{_origin(dh_transform(row, 0.0))}<axis xyz="0 0 1"/>'
        f'<limit lower="{row.lower:.12g}" upper="{row.upper:.12g}" effort="10" velocity="2"/></joint>'
    )


def _fixed(name: str, parent: str, child: str, transform: np.ndarray) -> str:
    return (
        f'<joint name="{name}" type="fixed"><parent link="{parent}"/><child link="{child}"/>'
        f"{_origin(transform)}</joint>"
    )


PSM_CHAIN = ("rcm", "yaw_link", "pitch_link", "insertion_link", "roll_link", "wrist_pitch_link", "wrist_yaw_link")


def psm_link_transforms(tool: Tool, q: np.ndarray, jaw: float) -> list[tuple[str, str, np.ndarray]]:
    """Each link of the PSM URDF in its parent link, for joints ``q`` and jaw angle ``jaw``: (parent,
    child, 4x4 pose), as ``robot_state_publisher`` would put them on ``/tf``."""
    transforms = [(PSM_CHAIN[i], PSM_CHAIN[i + 1], dh_transform(row, float(value)))
                  for i, (row, value) in enumerate(zip(tool.dh, q, strict=True))]  # fmt: skip
    for side, sign in (("left", 1.0), ("right", -1.0)):
        finger = np.eye(4)
        finger[:3, :3] = rot_z(sign * jaw / 2)  # as PSM.set_jaw turns the two fingers
        transforms.append(("wrist_yaw_link", f"jaw_{side}_link", finger))
    transforms.append(("wrist_yaw_link", "tool_tip", tool.tip_offset))
    return transforms


def build_psm_urdf(tool: Tool, meshes: str = "meshes") -> str:
    """PSM with ``tool``: six DH joints, two jaw fingers about the wrist-yaw axis, and a fixed frame
    at the jaw tips. ``meshes``: the mesh folder as the URDF refers to it."""
    pitch_to_yaw = tool.rows[2].a
    links = [
        _empty_link("rcm"),
        _empty_link("yaw_link"),
        _empty_link("pitch_link"),
        _prism_link("insertion_link", SHAFT_RADIUS, tool.rows[0].d, 0.0, INSTRUMENT_GREY, meshes),
        _empty_link("roll_link"),
        _box_link("wrist_pitch_link", (pitch_to_yaw, 0.004, 0.004), (pitch_to_yaw / 2, 0, 0), INSTRUMENT_GREY),
        _empty_link("wrist_yaw_link"),
        _box_link("jaw_left_link", (0.0012, JAW_LENGTH, 2 * JAW_HALF_WIDTH), (-0.0007, JAW_LENGTH / 2, 0), JAW_GREY),
        _box_link("jaw_right_link", (0.0012, JAW_LENGTH, 2 * JAW_HALF_WIDTH), (0.0007, JAW_LENGTH / 2, 0), JAW_GREY),
        _empty_link("tool_tip"),
    ]
    joints = [_joint(row, PSM_CHAIN[i], PSM_CHAIN[i + 1]) for i, row in enumerate(tool.dh)]
    for side in ("left", "right"):
        jaw = DHRow(f"jaw_{side}", "R", 0.0, 0.0, 0.0, 0.0, -JAW_LIMITS[1] / 2, JAW_LIMITS[1] / 2)
        joints.append(_joint(jaw, "wrist_yaw_link", f"jaw_{side}_link"))
    joints.append(_fixed("tool_tip_fixed", "wrist_yaw_link", "tool_tip", tool.tip_offset))
    return _robot("psm", links, joints)


@cache
def psm_urdf(tool: Tool) -> str:
    """The PSM URDF file for a tool: the committed ``psm.urdf`` for the default tool, otherwise one
    written for it into a temporary folder (removed when the process ends)."""
    if tool is load_tool(DEFAULT_TOOL):
        return "psm.urdf"
    path = Path(_generated_folder().name) / f"psm-{id(tool)}-{tool.name}.urdf"
    path.write_text(build_psm_urdf(tool, meshes=str(Path(str(files("surgisim.assets"))) / "meshes")))
    return str(path)


@cache
def _generated_folder() -> tempfile.TemporaryDirectory:
    return process_folder("urdf")


def build_ecm_urdf() -> str:
    """ECM: four DH joints; the camera frame is the ``camera_link`` at the endoscope tip."""
    links = [
        _empty_link("rcm"),
        _empty_link("yaw_link"),
        _empty_link("pitch_link"),
        # The endoscope's shaft stops short of the lens: geometry at the eye point hangs TinyRenderer.
        _prism_link("insertion_link", ENDOSCOPE_RADIUS, ECM_DH[3].d - 0.01, 0.0, INSTRUMENT_GREY, "meshes"),
        _empty_link("roll_link"),
        _empty_link("camera_link"),
    ]
    chain = ["rcm", "yaw_link", "pitch_link", "insertion_link", "roll_link"]
    joints = [_joint(row, chain[i], chain[i + 1]) for i, row in enumerate(ECM_DH)]
    joints.append(_fixed("camera_mount", "roll_link", "camera_link", ECM_CAMERA_MOUNT))
    return _robot("ecm", links, joints)


def _robot(name: str, links: list[str], joints: list[str]) -> str:
    body = "\n  ".join(links + joints)
    header = '<?xml version="1.0"?>\n<!-- Generated by surgisim.envs.urdf_builder; do not edit. -->\n'
    return f'{header}<robot name="{name}">\n  {body}\n</robot>\n'


def prism_obj(sides: int = 8) -> str:
    """Unit prism (circumradius 1, height 1, centred) with ``sides`` faces, as OBJ text. Texture
    coordinates: u across (from y), v along the axis, so a texture's columns wrap around the vessel
    as seen from either side and its rows run along it, with no seam."""
    angles = 2 * np.pi * np.arange(sides) / sides
    lines = ["# regular prism, generated by surgisim.envs.urdf_builder"]
    for z in (-0.5, 0.5):
        lines += [f"v {np.cos(a):.6f} {np.sin(a):.6f} {z}" for a in angles]
    for z in (-0.5, 0.5):
        lines += [f"vt {(np.sin(a) + 1) / 2:.6f} {z + 0.5}" for a in angles]
    face = _face_with_uv
    for i in range(sides):
        j = (i + 1) % sides
        lines += [face(i + 1, j + 1, j + sides + 1), face(i + 1, j + sides + 1, i + sides + 1)]
    for i in range(1, sides - 1):
        lines += [face(1, i + 2, i + 1), face(sides + 1, sides + i + 1, sides + i + 2)]
    return "\n".join(lines) + "\n"


def _face_with_uv(*vertices: int) -> str:
    """An OBJ face whose vertices have texture coordinates of the same numbers."""
    return "f " + " ".join(f"{v}/{v}" for v in vertices)


def tissue_obj(half_size: float) -> str:
    """The tissue bed's top face: a square of side ``2 * half_size`` at z = 0, the whole texture on it."""
    h = half_size
    return "\n".join([
        "# tissue surface, generated by surgisim.envs.urdf_builder",
        f"v {-h} {-h} 0", f"v {h} {-h} 0", f"v {h} {h} 0", f"v {-h} {h} 0",
        "vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1",
        _face_with_uv(1, 2, 3), _face_with_uv(1, 3, 4),
    ]) + "\n"  # fmt: skip


def icosphere_obj() -> str:
    """Unit icosahedron subdivided once (80 faces): a sphere cheap enough to render every step.
    Texture coordinates are its (x, y) seen from above (no seam: an organ is seen from above)."""
    t = (1 + 5**0.5) / 2
    vertices = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
                (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]  # fmt: skip
    vertices = [np.array(v) / np.linalg.norm(v) for v in vertices]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5),
             (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]  # fmt: skip
    midpoints: dict[tuple[int, int], int] = {}

    def midpoint(i: int, j: int) -> int:
        key = (min(i, j), max(i, j))
        if key not in midpoints:
            m = vertices[i] + vertices[j]
            vertices.append(m / np.linalg.norm(m))
            midpoints[key] = len(vertices) - 1
        return midpoints[key]

    fine = []
    for a, b, c in faces:
        ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
        fine += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
    lines = ["# icosphere, generated by surgisim.envs.urdf_builder"]
    lines += [f"v {v[0]:.6f} {v[1]:.6f} {v[2]:.6f}" for v in vertices]
    lines += [f"vt {(v[0] + 1) / 2:.6f} {(v[1] + 1) / 2:.6f}" for v in vertices]
    lines += [_face_with_uv(a + 1, b + 1, c + 1) for a, b, c in fine]
    return "\n".join(lines) + "\n"


def generated_assets() -> dict[str, str]:
    """Relative path in ``assets/`` -> file text, for every generated asset."""
    return {
        "psm.urdf": build_psm_urdf(load_tool(DEFAULT_TOOL)),
        "ecm.urdf": build_ecm_urdf(),
        "meshes/prism8.obj": prism_obj(8),
        "meshes/icosphere.obj": icosphere_obj(),
        "meshes/tissue.obj": tissue_obj(TISSUE_HALF_SIZE),
    }


def main() -> None:
    root = Path(str(files("surgisim.assets")))
    for relative, text in generated_assets().items():
        (root / relative).write_text(text)
        print(f"wrote {root / relative}")


if __name__ == "__main__":
    main()
