"""The suture thread: fixed-length links, tied to the needle, drawn through the holes it is pulled through."""

import numpy as np

from surgisim.envs import SurgicalEnv, make_expert
from surgisim.envs.scene import Scene
from surgisim.envs.thread import LINK_LENGTH, THREAD_LINKS, THREAD_RADIUS, Thread


def link_lengths(thread: Thread) -> np.ndarray:
    return np.linalg.norm(np.diff(thread.points, axis=0), axis=1)


def test_free_thread_hangs_from_its_tie_and_lies_on_the_tissue():
    scene = Scene()
    thread = Thread(scene.sim, scene.camera)
    assert THREAD_LINKS >= 20
    anchor = np.array([0.0, 0.0, 0.03])
    thread.lay_out(anchor, np.array([1.0, 0.0, 0.0]))
    for _ in range(30):
        thread.step(anchor)
    np.testing.assert_allclose(link_lengths(thread), LINK_LENGTH, rtol=1e-9)
    np.testing.assert_allclose(thread.points[0], anchor)
    assert thread.points[:, 2].min() >= THREAD_RADIUS - 1e-12  # never through the tissue surface
    assert thread.points[-1, 2] == THREAD_RADIUS  # the far end lies on it
    scene.close()


def test_thread_slides_through_a_hole_only_when_pulled_taut():
    scene = Scene()
    thread = Thread(scene.sim, scene.camera)
    hole = np.array([0.0, 0.0, 0.0])
    thread.lay_out(np.array([0.0, 0.0, 0.002]), np.array([-1.0, 0.0, 0.0]))
    thread.pass_through(hole, np.array([0.0, 0.0, 0.002]))
    thread.step(np.array([0.0, 0.0, 0.005]))
    assert abs(thread.through - 0.005) < 1e-12
    thread.step(np.array([0.0, 0.0, 0.003]))  # slack: nothing slides back
    assert abs(thread.through - 0.005) < 1e-12
    thread.step(np.array([0.0, 0.0, 0.02]))
    assert abs(thread.through - 0.02) < 1e-12
    assert np.min(np.linalg.norm(thread.points - hole, axis=1)) < 1e-12  # it runs through the hole
    scene.close()


def test_suture_throw_draws_the_thread_through_both_holes():
    env = SurgicalEnv("SutureThrow")
    expert = make_expert(env)
    observation, info = env.reset(seed=1)
    expert.reset()
    terminated = truncated = False
    while not (terminated or truncated):
        observation, _, terminated, truncated, info = env.step(expert(observation))
    assert info["is_success"] and info["thread_through_mm"] >= 30.0
    assert info["entry_error_mm"] < 3.0 and info["exit_error_mm"] < 3.0 and info["damage_mm"] < 1.0
    thread, tissue = env.task.thread, env.task.tissue
    assert len(thread.holes) == 2
    for hole in (tissue.entry, tissue.exit):
        assert np.min(np.linalg.norm(thread.points - hole, axis=1)) < 1e-9
    np.testing.assert_allclose(thread.points[0], env.task.needle.points(np.array([0.0]))[0], atol=1e-12)
    env.close()
