"""dVRK tool definitions: the dVRK's file format read as the dVRK reads it, and the PSM it gives."""

import json
import os
import re

import numpy as np
import pytest

from conftest import dvrk_measured_cp, dvrk_tool_file
from surgisim.envs import SurgicalEnv, make_expert
from surgisim.envs.documents import strip_comments
from surgisim.envs.tools import load_tool, shipped_tools

# A tool file laid out as sawIntuitiveResearchKit's share/tool/*.json are (older files: hyphenated
# keys, "outer_" joint names), with the fields surgisim does not use (coupling, engage angles).
DVRK_STYLE = """/* -*- Mode: Javascript; tab-width: 4; indent-tabs-mode: nil; c-basic-offset: 4 -*- */
{
    // see dVRK user guide
    "DH": {
        "convention": "modified",
        "joints": [
            {
                "name": "outer_roll",
                "alpha":  0.0000, "A":  0.0000, "theta":  0.0000, "D":  0.4162,
                "type": "revolute", "mode": "active", "offset":  0.0000,
                "qmin": -4.53786, // -260 degrees
                "qmax":  4.53786, //  260 degrees
                "ftmax": 0.33
            },
            {
                "name": "outer_wrist_pitch",
                "alpha": -1.5708, "A":  0.0000, "theta":  0.0000, "D":  0.0000,
                "type": "revolute", "mode": "active", "offset": -1.5708,
                "qmin": -1.39626, "qmax":  1.39626, "ftmax": 0.25
            },
            {
                "name": "outer_wrist_yaw",
                "alpha": -1.5708, "A":  0.0091, "theta":  0.0000, "D":  0.0000,
                "type": "revolute", "mode": "active", "offset": -1.5708,
                "qmin": -1.39626, "qmax":  1.39626, "ftmax": 0.20
            }
        ]
    }
    ,
    "jaw" : { "qmin": -0.698132, "qmax":  1.39626, "ftmax": 0.16 }
    ,
    // rotation to match ISI convention
    "tooltip-offset" : [[ 0.0, -1.0,  0.0,  0.0],
                        [ 0.0,  0.0,  1.0,  0.0],
                        [-1.0,  0.0,  0.0,  0.0],
                        [ 0.0,  0.0,  0.0,  1.0]]
    ,
    "coupling" : { "ActuatorToJointPosition" : [[ -1.5632, 0, 0, 0], [0, 1.0186, 0, 0], [0, -0.8306, 0.6089, 0.6089],
                                                [0, 0, -1.2177, 1.2177]] }
    ,
    "tool-engage-position" : { "lower" : [-4.71239, -0.261799, -0.261799, 0.0],
                               "upper" : [ 4.71239,  0.261799,  0.261799, 0.0] }
}
"""


@pytest.mark.parametrize("name", shipped_tools())
def test_every_shipped_tool_gives_the_dvrk_measured_cp_to_a_hundredth_of_a_millimetre(name):
    tool = load_tool(name)
    raw = dvrk_tool_file(name)
    rng = np.random.default_rng(0)
    for _ in range(200):
        q = rng.uniform(tool.lower, tool.upper)
        q[2] = rng.uniform(0.03, tool.upper[2])
        expected = dvrk_measured_cp(raw, q)
        cp = tool.cp(q)
        assert np.abs(cp[:3, 3] - expected[:3, 3]).max() < 1e-5  # 0.01 mm
        assert np.abs(cp[:3, :3] - expected[:3, :3]).max() < 1e-4
        # The jaw tips the tasks score lie 10.2 mm along the jaws past it.
        np.testing.assert_allclose(tool.tip(q)[:3, 3], cp[:3, 3] + 0.0102 * cp[:3, 2], atol=1e-12)


def test_the_shipped_set_has_both_key_spellings_and_both_shaft_lengths():
    assert {"LARGE_NEEDLE_DRIVER_400006", "LARGE_NEEDLE_DRIVER_420006"} <= set(shipped_tools())
    assert len(shipped_tools()) >= 4
    shafts = {name: load_tool(name).rows[0].d for name in shipped_tools()}
    assert shafts["LARGE_NEEDLE_DRIVER_400006"] == 0.4162 and shafts["LARGE_NEEDLE_DRIVER_420006"] == 0.4670
    assert load_tool("PROGRASP_FORCEPS_400093").rows[2].a == 0.0107


def test_a_file_in_the_dvrks_own_layout_loads(tmp_path):
    path = tmp_path / "LARGE_NEEDLE_DRIVER_400006.json"
    path.write_text(DVRK_STYLE)
    tool = load_tool(str(path))
    assert tool.jaw_limits == (-0.698132, 1.39626) and tool.rows[0].d == 0.4162
    q = np.array([0.1, -0.2, 0.12, 0.3, 0.4, -0.5])
    expected = dvrk_measured_cp(json.loads(strip_comments(DVRK_STYLE)), q)
    np.testing.assert_allclose(tool.cp(q)[:3, 3], expected[:3, 3], atol=1e-5)  # 0.01 mm
    np.testing.assert_allclose(tool.cp(q)[:3, :3], expected[:3, :3], atol=1e-4)  # pi/2 read for 1.5708
    newer = tmp_path / "newer.json"
    newer.write_text(DVRK_STYLE.replace('"tooltip-offset"', '"tooltip_offset"').replace('"outer_', '"'))
    np.testing.assert_allclose(load_tool(str(newer)).cp(q), tool.cp(q), atol=1e-15)


@pytest.mark.parametrize(
    ("change", "field"),
    [(lambda d: d["DH"]["joints"].pop(), "DH.joints must list the tool's 3 joints"),
     (lambda d: d["DH"]["joints"][2].update(A=float("nan")), "DH.joints[2].A must be a finite number"),
     (lambda d: d["DH"]["joints"][1].pop("alpha"), "DH.joints[1].alpha is missing"),
     (lambda d: d["DH"]["joints"][1].update(alpha=0.3), "DH.joints[1].alpha = 0.3"),
     (lambda d: d["DH"]["joints"][0].update(name="elbow"), "DH.joints[0].name is 'elbow'"),
     (lambda d: d.update({"tooltip-offset": [[1, 0, 0], [0, 1, 0]]}), "tooltip-offset must be a 4x4 rigid transform"),
     (lambda d: d.update({"tooltip-offset": (2 * np.eye(4)).tolist()}), "tooltip-offset must be a 4x4 rigid"),
     (lambda d: d["jaw"].update(qmin=2.0), "jaw.qmin must lie below jaw.qmax"),
     (lambda d: d.pop("jaw"), "jaw is missing"),
     # Numbers that no PSM instrument has: each would make a meaningless arm (bounds from the dVRK's own files).
     (lambda d: d["DH"]["joints"][0].update(D=1e9), "DH.joints[0].D = 1e+09 m is not a PSM instrument's"),
     (lambda d: d["DH"]["joints"][0].update(D=-0.5), "DH.joints[0].D = -0.5 m is not a PSM instrument's"),
     (lambda d: d["DH"]["joints"][0].update(D=0), "DH.joints[0].D = 0 m is not a PSM instrument's"),
     (lambda d: d["DH"]["joints"][2].update(A=0.5), "DH.joints[2].A = 0.5 m"),
     (lambda d: d["DH"]["joints"][1].update(qmax=7.0), "DH.joints[1].qmin and qmax must lie within"),
     (lambda d: d["jaw"].update(qmax=6.0), "jaw.qmin and jaw.qmax must lie within"),
     (lambda d: d["tooltip-offset"][0].__setitem__(3, 1e9), "tooltip-offset moves the tool tip 1e+09 m")],
)  # fmt: skip
def test_a_malformed_tool_file_is_named_with_its_field(tmp_path, change, field):
    data = json.loads(strip_comments(DVRK_STYLE))
    change(data)
    path = tmp_path / f"bad-{abs(hash(field))}.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=re.escape(field)) as error:
        load_tool(str(path))
    assert str(path) in str(error.value)


def test_a_key_twice_or_a_file_that_is_not_a_file_is_refused(tmp_path):
    twice = tmp_path / "twice.json"
    twice.write_text(DVRK_STYLE.replace('"D":  0.4162,', '"D":  0.4162, "D": 1e9,', 1))
    with pytest.raises(ValueError, match=r"twice\.json: key 'D' appears twice"):
        load_tool(str(twice))
    os.mkfifo(tmp_path / "fifo.json")  # would block a reader for ever
    with pytest.raises(ValueError, match="must be a regular file"):
        load_tool(str(tmp_path / "fifo.json"))


def test_unknown_tool_names_the_shipped_ones():
    with pytest.raises(ValueError, match="LARGE_NEEDLE_DRIVER_420006"):
        load_tool("SCALPEL")


def test_the_env_takes_a_tool_and_the_simulated_arm_follows_its_geometry():
    env = SurgicalEnv(task="NeedleReach", tool="LARGE_NEEDLE_DRIVER_420006")
    env.reset(seed=0)
    psm = env.scene.psm
    assert psm.tool.rows[0].d == 0.4670
    rng = np.random.default_rng(4)
    for _ in range(50):
        q = rng.uniform(psm.lower, psm.upper)
        q[2] = rng.uniform(0.03, psm.upper[2])
        psm.set_joints(q)
        assert np.abs(psm.sim_tip_pose()[:3, 3] - psm.tip_pose()[:3, 3]).max() <= 1e-6  # the URDF matches the tool
    expert = make_expert(env)
    observation, _ = env.reset(seed=1)
    for _ in range(50):
        observation, _, terminated, _, info = env.step(expert(observation))
        if terminated:
            break
    assert info["is_success"]  # the longer shaft changes the joints, not the task
    env.close()
