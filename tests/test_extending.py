"""The seams for new work: a task is its file plus one registry line, an arm is a robot class, and
neither touches the env class. The task and arm here live only in this test."""

import numpy as np
import pytest

from surgisim.envs import SurgicalEnv
from surgisim.envs.camera import SegLabel
from surgisim.envs.robots import PSM
from surgisim.envs.scene import PSM2_RCM, PSM_AIM
from surgisim.envs.tasks import REGISTRY, Registered
from surgisim.envs.tasks.base import ROBOT_INPUTS, Expert, Task
from surgisim.envs.tasks.markers import GoalMarker
from surgisim.envs.transforms import look_at_base


class SlowPSM(PSM):
    """A PSM whose joints move half as far per step."""

    joint_step = PSM.joint_step / 2


class SlowReach(Task):
    """Bring a slow PSM's tip to a target."""

    arms = ("slow",)

    def build(self, scene):
        self.arm = scene.add_arm(SlowPSM, "slow", look_at_base(PSM2_RCM, PSM_AIM), SegLabel.INSTRUMENT)
        self.target = GoalMarker(scene)

    def reset(self, scene, rng):
        self.target.place(rng.uniform([-0.03, -0.03, 0.02], [0.03, 0.03, 0.04]))

    def achieved_goal(self, scene):
        return self.arm.tip_pose()[:3, 3]

    def desired_goal(self, scene):
        return self.target.position.copy()


class SlowReachExpert(Expert):
    def __call__(self, observation):
        return self.env.action_toward(observation["desired_goal"])


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(REGISTRY, "SlowReach", Registered(SlowReach, SlowReachExpert))


@pytest.mark.parametrize("control", ["cartesian", "joint"])
def test_a_new_task_with_a_new_arm_runs_with_its_expert(registered, control):
    env = SurgicalEnv(task="SlowReach", control=control)
    assert env.action_space.shape == ((5 if control == "cartesian" else 7),)  # a PSM's: motion, roll or joints, jaw
    expert = REGISTRY["SlowReach"].expert(env)
    observation, info = env.reset(seed=0)
    for _ in range(SlowReach.max_episode_steps):
        observation, _, terminated, _, info = env.step(expert(observation))
        if terminated:
            break
    assert info["is_success"]
    env.close()


def test_the_joint_controller_takes_the_arms_own_step(registered):
    env = SurgicalEnv(task="SlowReach", control="joint")
    env.reset(seed=0)
    arm = env.unwrapped.task.arm
    before = arm.q.copy()
    env.step(np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 0.0]))
    np.testing.assert_allclose(np.abs(arm.q - before), PSM.joint_step / 2, atol=1e-12)
    env.close()


def test_a_goal_position_is_set_through_the_task():
    env = SurgicalEnv(task="NeedleReach")
    env.reset(seed=0)
    env.set_goal([0.01, -0.02, 0.03])
    np.testing.assert_allclose(env.observe()["desired_goal"], [0.01, -0.02, 0.03], atol=1e-7)
    for bad in ([0.0, 0.0], [np.nan, 0.0, 0.0]):
        with pytest.raises(ValueError, match="3 finite numbers"):
            env.set_goal(bad)
    np.testing.assert_allclose(env.observe()["desired_goal"], [0.01, -0.02, 0.03], atol=1e-7)
    env.close()
    tracking = SurgicalEnv(task="EndoscopeTrack")
    tracking.reset(seed=0)
    with pytest.raises(ValueError, match="goal is not a position"):
        tracking.set_goal([0.0, 0.0, 0.05])
    tracking.close()


@pytest.mark.parametrize("name", list(REGISTRY))
def test_a_layout_carries_an_episodes_scenery_to_another_episode(name):
    """What a robot's scene file holds: ``layout()`` of one episode, put into an env on another
    seed, gives the same task features; a wrong layout changes nothing."""
    entry = REGISTRY[name]
    assert set(entry.robot_inputs) <= set(ROBOT_INPUTS)
    assert ("layout" in entry.robot_inputs) == bool(entry.task.layout_keys)
    source, target = SurgicalEnv(task=name), SurgicalEnv(task=name)
    source.reset(seed=1)
    target.reset(seed=2)
    layout = source.layout()
    assert set(layout) == set(entry.task.layout_keys)
    before = target.layout()
    with pytest.raises(ValueError, match="layout"):
        target.set_layout({**layout, "unknown": 1.0})
    assert target.layout() == before
    target.set_layout(layout)
    assert target.layout() == layout
    if name == "NavigateAnatomy":  # the anatomy is its observation's task part
        np.testing.assert_array_equal(source.observe()["observation"][10:], target.observe()["observation"][10:])
    elif layout:  # the marks are the goal
        np.testing.assert_array_equal(source.observe()["desired_goal"], target.observe()["desired_goal"])
    source.close()
    target.close()
