"""Each task is solvable: its scripted expert succeeds in at least 99 of 100 seeded episodes."""

import pytest

from conftest import ENV_IDS
from surgisim.agents.evaluate import evaluate


@pytest.mark.expensive
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_expert_success_over_100_seeded_episodes(env_id):
    metrics = evaluate(env_id, "expert", episodes=100, seed=0)
    assert metrics["success_rate"] >= 0.99
    assert metrics["cost_rate"] == 0.0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_expert_works_under_joint_control(env_id):
    metrics = evaluate(env_id, "expert", episodes=20, seed=100, env_kwargs={"control": "joint"})
    assert metrics["success_rate"] >= 0.95


def test_the_needle_pick_expert_for_a_student_takes_the_wire_below_its_jaws_without_turning_and_retries():
    """``make_expert(env, for_student=True)``: the choices a student cannot see the reason for are
    gone (no roll; the wire where it lies nearest below the jaws, not a point found by reasoning
    about the whole needle), it still succeeds, under kinematic errors too, and jaws that closed on
    nothing open again before the next try."""
    import gymnasium as gym
    import numpy as np

    from surgisim.envs import make_expert
    from surgisim.envs.needle import NEEDLE_ARC
    from surgisim.envs.tasks.needle_task import OPEN_JAW, jaws_down_pose

    for randomize in (None, "kinematics"):
        env = gym.make("surgisim/NeedlePick-v0", randomize=randomize)
        expert, successes, taken = make_expert(env, for_student=True), 0, []
        for seed in range(10):
            observation, _ = env.reset(seed=seed)
            expert.reset()
            for _ in range(80):
                action = expert(observation)
                assert action[3] == 0.0  # no roll
                held_before = env.unwrapped.task.grasp.held
                observation, _, terminated, truncated, info = env.step(action)
                if env.unwrapped.task.grasp.held and not held_before:
                    grasp = np.linalg.inv(env.unwrapped.task.needle.pose()) @ env.unwrapped.arms[0].tip_pose()
                    taken.append(np.arctan2(grasp[1, 3], grasp[0, 3]) % (2 * np.pi) / NEEDLE_ARC)
                if terminated or truncated:
                    break
            successes += info["is_success"]
        assert successes == 10, randomize
        assert min(taken) > 0.13 and max(taken) < 0.87  # never by its ends
        assert max(taken) - min(taken) > 0.3  # where the jaws come down, not one fixed point
        env.close()
    env = gym.make("surgisim/NeedlePick-v0")
    env.reset(seed=0)
    model, expert = env.unwrapped, make_expert(env, for_student=True)
    model.arms[0].set_jaw(0.0)  # closed, holding nothing
    model.arms[0].set_joints(model.arms[0].ik(model.arms[0].tip_pose()))
    assert expert(model.privileged_observation())[4] == pytest.approx((np.rad2deg(OPEN_JAW) + 20) / 50 - 1, abs=1e-6)
    # Closed on nothing at the tissue: rise with the jaws closed first (a held needle would rise
    # with them, which an image shows), then open.
    beside_wire = model.task.needle.points(np.array([NEEDLE_ARC / 2]))[0] + np.array([0.004, 0.0, -0.0005])
    model.arms[0].set_joints(model.arms[0].ik(jaws_down_pose(beside_wire, 0.0)))
    pose, jaw = model.controllers[0].set_point(expert(model.privileged_observation()))
    np.testing.assert_allclose(pose[:3, 3] - model.arms[0].tip_pose()[:3, 3], [0.0, 0.0, 0.004], atol=1e-4)
    assert jaw == pytest.approx(np.deg2rad(-20.0))
    env.close()
