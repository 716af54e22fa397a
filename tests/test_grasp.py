"""The gated grasp: only jaws closed around the wire take the needle; it is then held rigidly."""

import numpy as np
import pytest

from surgisim.envs import SurgicalEnv
from surgisim.envs.kinematics import JAW_LIMITS
from surgisim.envs.needle import NEEDLE_ARC, NEEDLE_WIRE_RADIUS
from surgisim.envs.transforms import make_pose

OPEN, CLOSED = np.deg2rad(60.0), JAW_LIMITS[0]
GRASP_ANGLE = 0.3 * NEEDLE_ARC


@pytest.fixture
def env():
    env = SurgicalEnv("NeedlePick", action_frame="world")
    env.reset(seed=0)
    yield env
    env.close()


def place_jaws(env: SurgicalEnv, sideways: float, jaw: float) -> None:
    """Put the open jaws over the wire with the wire across them, shifted ``sideways`` (m)
    in the direction the fingers close."""
    needle = env.task.needle
    point = needle.points(np.array([GRASP_ANGLE]))[0]
    tangent = needle.pose()[:3, :3] @ np.array([-np.sin(GRASP_ANGLE), np.cos(GRASP_ANGLE), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    # Tool-tip axes: z along the jaws (down), x along the wire, so the fingers close along y.
    rotation = np.column_stack([tangent, np.cross(down, tangent), down])
    tip = point - np.array([0.0, 0.0, NEEDLE_WIRE_RADIUS]) + sideways * rotation[:, 1]
    psm = env.scene.psm
    psm.set_joints(psm.ik(make_pose(rotation, tip)))
    psm.set_jaw(jaw)
    env.task.previous_jaws[0] = jaw
    assert np.allclose(psm.tip_pose()[:3, 3], tip, atol=1e-6)


def close_jaws(env: SurgicalEnv) -> dict:
    return env.step(np.array([0, 0, 0, 0, -1.0], dtype=np.float32))[4]


def test_closing_around_the_wire_grasps(env):
    place_jaws(env, sideways=0.0, jaw=OPEN)
    assert close_jaws(env)["held"]


@pytest.mark.parametrize("sideways", [0.006, -0.006, 0.012])
def test_closing_beside_the_needle_does_not_grasp(env, sideways):
    place_jaws(env, sideways=sideways, jaw=OPEN)
    assert not close_jaws(env)["held"]


def test_wire_against_one_finger_only_does_not_grasp(env):
    # Opened to 20 degrees, the fingers' tips are 3.4 mm apart; 2 mm to the side puts the wire
    # against (and through) one finger, outside the gap.
    place_jaws(env, sideways=0.002, jaw=np.deg2rad(20.0))
    assert not close_jaws(env)["held"]
    place_jaws(env, sideways=0.0, jaw=np.deg2rad(20.0))
    assert close_jaws(env)["held"]


def test_already_closed_jaws_do_not_grasp(env):
    place_jaws(env, sideways=0.0, jaw=CLOSED)
    assert not close_jaws(env)["held"]


def test_held_needle_follows_the_jaws_rigidly_and_opening_releases(env):
    place_jaws(env, sideways=0.0, jaw=OPEN)
    assert close_jaws(env)["held"]
    psm, needle = env.scene.psm, env.task.needle
    relative = np.linalg.inv(psm.tip_pose()) @ needle.pose()
    for action in ([0, 0, 1, 0, -1], [0, 0, 1, 0, -1], [1, 0, 0, 0.5, -1], [0, -1, 0.3, -1, -1]):
        info = env.step(np.array(action, dtype=np.float32))[4]
        assert info["held"]
        np.testing.assert_allclose(np.linalg.inv(psm.tip_pose()) @ needle.pose(), relative, atol=1e-9)
    lifted = needle.midpoint()[2]
    assert lifted > 0.01
    info = env.step(np.array([0, 0, 0, 0, 0.6], dtype=np.float32))[4]
    assert not info["held"]
    for _ in range(20):
        env.step(np.array([0, 0, 0, 0, 0.6], dtype=np.float32))
    assert not env.task.falling  # it came to rest
    resting = needle.points(np.linspace(0, NEEDLE_ARC, 9))[:, 2]
    assert resting.max() < 0.004 and resting.min() > -0.001  # dropped onto the tissue
