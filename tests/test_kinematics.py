"""The simulated arms agree with the dVRK DH model; the closed-form IK inverts it."""

import numpy as np
import pytest

from surgisim.envs.kinematics import ECM_DH, ecm_fk, ecm_ik
from surgisim.envs.scene import Scene
from surgisim.envs.tools import default_tool
from surgisim.envs.transforms import quat_to_matrix


@pytest.fixture(scope="module")
def scene():
    scene = Scene()
    yield scene
    scene.close()


def random_joints(rng: np.random.Generator, arm) -> np.ndarray:
    q = rng.uniform(arm.lower, arm.upper)
    q[2] = rng.uniform(0.03, arm.upper[2])  # the wrist is past the RCM
    return q


@pytest.mark.parametrize("arm_name", ["psm", "ecm"])
def test_sim_forward_kinematics_matches_dh(scene, arm_name):
    arm = scene.psm if arm_name == "psm" else scene.ecm
    rng = np.random.default_rng(1)
    for _ in range(200):
        arm.set_joints(random_joints(rng, arm))
        sim_pose, dh_pose = arm.sim_tip_pose(), arm.tip_pose()
        assert np.abs(sim_pose[:3, 3] - dh_pose[:3, 3]).max() <= 1e-6
        # PyBullet reports link orientations with single-precision rounding (about 1e-6).
        assert np.abs(sim_pose[:3, :3] - dh_pose[:3, :3]).max() <= 1e-5


def test_psm_fk_at_zero_points_down_the_shaft():
    tip = default_tool().tip(np.array([0.0, 0.0, 0.1, 0.0, 0.0, 0.0]))
    # q3 - 0.4318 + 0.4162 to the wrist, then 9.1 mm and 10.2 mm along the straight wrist.
    np.testing.assert_allclose(tip[:3, 3], [0.0, 0.0, -(0.1 - 0.0156 + 0.0091 + 0.0102)], atol=1e-12)
    np.testing.assert_allclose(tip[:3, 2], [0.0, 0.0, -1.0], atol=1e-12)


def test_psm_ik_round_trip():
    rng = np.random.default_rng(2)
    tool = default_tool()
    lower, upper = tool.lower, tool.upper
    for _ in range(2000):
        q = rng.uniform(lower, upper)
        q[2] = rng.uniform(0.03, upper[2])
        pose = tool.tip(q)
        solution = tool.ik(pose, q_ref=q)
        reached = tool.tip(solution)
        assert np.linalg.norm(reached[:3, 3] - pose[:3, 3]) <= 1e-4  # 0.1 mm
        angle = np.arccos(np.clip((np.trace(reached[:3, :3].T @ pose[:3, :3]) - 1) / 2, -1, 1))
        assert np.rad2deg(angle) <= 0.1
        np.testing.assert_allclose(solution, q, atol=1e-8)  # the in-limits solution is the one found


def test_ecm_ik_round_trip():
    rng = np.random.default_rng(3)
    lower = np.array([row.lower for row in ECM_DH])
    upper = np.array([row.upper for row in ECM_DH])
    for _ in range(500):
        q = rng.uniform(lower, upper)
        np.testing.assert_allclose(ecm_ik(ecm_fk(q)[:3, 3], q[3]), q, atol=1e-9)


@pytest.mark.parametrize("arm_name", ["psm", "ecm"])
def test_shaft_passes_through_rcm(scene, arm_name):
    arm = scene.psm if arm_name == "psm" else scene.ecm
    shaft_link = scene.sim.link_indices(arm.name)["insertion_link"]
    rng = np.random.default_rng(4)
    for _ in range(200):
        arm.set_joints(random_joints(rng, arm))
        origin, orientation = scene.sim.link_pose(arm.name, shaft_link)
        axis = quat_to_matrix(orientation)[:, 2]
        offset = arm.rcm() - origin
        assert np.linalg.norm(offset - np.dot(offset, axis) * axis) <= 1e-6


@pytest.mark.parametrize("arm_name", ["psm", "ecm"])
def test_joint_limits_hold(scene, arm_name):
    arm = scene.psm if arm_name == "psm" else scene.ecm
    rng = np.random.default_rng(5)
    for _ in range(100):
        arm.set_joints(rng.uniform(arm.lower - 1.0, arm.upper + 1.0))
        simulated = scene.sim.joint_positions(arm.name, arm.joint_ids)
        assert np.all(simulated >= arm.lower - 1e-12) and np.all(simulated <= arm.upper + 1e-12)
