"""The URDFs parse with a URDF library, have the dVRK joints and match their generator."""

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import yourdfpy

from surgisim.envs.kinematics import ECM_DH
from surgisim.envs.tools import default_tool
from surgisim.envs.urdf_builder import generated_assets

ASSETS = Path(str(files("surgisim.assets")))


@pytest.mark.parametrize(
    ("filename", "rows", "extra"),
    [("psm.urdf", default_tool().dh, ["jaw_left", "jaw_right"]), ("ecm.urdf", ECM_DH, [])],
)
def test_urdf_parses_with_expected_joints(filename, rows, extra):
    robot = yourdfpy.URDF.load(str(ASSETS / filename), build_scene_graph=False, load_meshes=False)
    assert robot.actuated_joint_names == [row.name for row in rows] + extra
    for row in rows:
        joint = robot.joint_map[row.name]
        assert joint.type == ("revolute" if row.joint_type == "R" else "prismatic")
        np.testing.assert_allclose([joint.limit.lower, joint.limit.upper], [row.lower, row.upper], atol=1e-9)


def test_committed_assets_match_generator():
    for relative, text in generated_assets().items():
        assert (ASSETS / relative).read_text() == text, f"{relative} is stale: run python -m surgisim.envs.urdf_builder"
