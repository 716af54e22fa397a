"""Needle-tissue interaction: driving along the arc is free, sweeping sideways is resisted and damages."""

import numpy as np
import pytest

from surgisim.envs import SurgicalEnv, make_expert
from surgisim.envs.needle import NEEDLE_RADIUS
from surgisim.envs.tissue import RESISTANCE, Tissue, rot_about_z, tip_position
from surgisim.envs.transforms import make_pose


def drive(seed: int, sweep_mm: float) -> dict:
    """Run the insertion expert, adding ``sweep_mm`` per step of motion along the needle's axis
    (sideways through the tissue) once the tip is in."""
    env = SurgicalEnv("NeedleInsert", action_frame="world")
    expert = make_expert(env)
    observation, info = env.reset(seed=seed)
    expert.reset()
    try:
        for _ in range(env.task.max_episode_steps):
            action = expert(observation)
            if env.task.tissue.entry is not None:
                action[:3] += sweep_mm / 5.0 * env.task.needle.pose()[:3, 2]  # 5 mm per unit action
            observation, _, terminated, _, info = env.step(action)
            if terminated:
                break
        return info
    finally:
        env.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_driving_along_the_arc_through_the_marks_does_no_damage(seed):
    info = drive(seed, sweep_mm=0.0)
    assert info["is_success"]
    assert info["entry_error_mm"] < 3.0 and info["exit_error_mm"] < 3.0
    assert info["damage_mm"] < 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sideways_sweep_damages_the_tissue(seed):
    clean, swept = drive(seed, sweep_mm=0.0), drive(seed, sweep_mm=1.0)
    assert swept["damage_mm"] > 1.0 > 100 * clean["damage_mm"]
    assert not swept["is_success"]  # over the 5 mm damage limit, or off the marks


def test_off_arc_motion_is_resisted_and_drags_the_holes():
    tissue = Tissue()
    # A needle whose plane is x-z, centre 9 mm above the surface: tip going down through z = 0.
    start = make_pose(np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]), np.array([0.0, 0.0, 0.009]))
    before = start @ rot_about_z(0.8)
    after = start @ rot_about_z(0.9)
    assert tip_position(before)[2] > 0 > tip_position(after)[2]
    tissue.update(before, after)
    assert tissue.entry is not None and abs(np.linalg.norm(tissue.entry - after[:3, 3]) - NEEDLE_RADIUS) < 1e-9
    # Along the arc: free, no damage.
    along = tissue.resist(after, after @ rot_about_z(0.1))
    np.testing.assert_allclose(along, after @ rot_about_z(0.1), atol=1e-12)
    tissue.update(after, along)
    assert tissue.damage_mm == 0.0
    # Sideways by 2 mm: only a fifth of it happens, and the hole is dragged that far.
    sideways = along.copy()
    sideways[:3, 3] += np.array([0.0, 0.002, 0.0])
    reached = tissue.resist(along, sideways)
    np.testing.assert_allclose(reached[:3, 3] - along[:3, 3], [0.0, 0.002 * (1 - RESISTANCE), 0.0], atol=1e-12)
    tissue.update(along, reached)
    assert tissue.damage_mm == pytest.approx(2.0 * (1 - RESISTANCE), rel=1e-6)


def test_needle_released_in_tissue_stays_there():
    env = SurgicalEnv("NeedleInsert", action_frame="world")
    expert = make_expert(env)
    observation, _ = env.reset(seed=4)
    expert.reset()
    while env.task.tissue.entry is None:
        observation, *_ = env.step(expert(observation))
    pose = env.task.needle.pose()
    for _ in range(5):
        info = env.step(np.array([0, 0, 0.5, 0, 0.6], dtype=np.float32))[4]  # open and back off
    assert not info["held"]
    np.testing.assert_allclose(env.task.needle.pose(), pose, atol=1e-12)
    env.close()
