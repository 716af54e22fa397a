"""Every registered environment: API checks, determinism, pickling, observations, rendering."""

import glob
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from conftest import ENV_IDS, assert_same, rollout
from surgisim.envs import SegLabel, SurgicalEnv, depth_to_metres, make_expert
from surgisim.envs.camera import turned_towards as magnified_axes
from surgisim.envs.core import OBS_MODES
from surgisim.envs.sim import software_gl
from surgisim.envs.transforms import make_pose


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("obs_mode", ["state", "all"])
def test_gymnasium_and_sb3_check_env(make_env, env_id, obs_mode):
    env = make_env(env_id, obs_mode=obs_mode)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("control", ["cartesian", "joint"])
def test_same_seed_same_rollout(make_env, env_id, control):
    first = rollout(make_env(env_id, control=control), seed=7, steps=120)
    second = rollout(make_env(env_id, control=control), seed=7, steps=120)
    assert_same(first, second)
    other = rollout(make_env(env_id, control=control), seed=8, steps=1)
    assert not np.array_equal(first[0][0]["observation"], other[0][0]["observation"])  # another seed, another start


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_round_trip_mid_episode(make_env, env_id):
    env = make_env(env_id, obs_mode="rgb")
    env.reset(seed=3)
    env.action_space.seed(3)
    for _ in range(5):
        env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    try:
        action = env.action_space.sample()
        # Rounding-level differences (1e-15) can come from PyBullet re-normalising a restored pose.
        assert_same(env.step(action), clone.step(action), atol=1e-12)
        assert_same(env.reset(seed=11), clone.reset(seed=11))
        assert_same(env.reset(), clone.reset())  # the generator state travelled too
    finally:
        clone.close()


@pytest.mark.parametrize(("seed", "randomize"), [(10, None), (4, "kinematics"), (3, "kinematics,appearance")])
def test_a_pickle_of_a_falling_needle_steps_exactly_as_the_original(seed, randomize):
    """NeedleHandover with random actions drops the needle, and physics takes over: the copy must
    match to the bit (PyBullet rounds a pose it is given, so both must be given the same numbers)."""
    env = gym.make("surgisim/NeedleHandover-v0", randomize=randomize).unwrapped
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    for _ in range(4):
        env.step(rng.uniform(-1, 1, env.action_space.shape))
    clone = pickle.loads(pickle.dumps(env))
    falling = 0
    try:
        for _ in range(90):
            action = rng.uniform(-1, 1, env.action_space.shape)
            mine, theirs = env.step(action)[0], clone.step(action)[0]
            falling += env.task.falling
            assert all(np.array_equal(mine[key], theirs[key]) for key in mine)
    finally:
        env.close()
        clone.close()
    assert falling > 0  # the case that drifted: physics ran


def test_a_layout_outside_the_workspace_is_refused_and_changes_nothing(make_env):
    env = make_env("surgisim/NeedleInsert-v0")
    env.reset(seed=0)
    before = env.unwrapped.task.layout()
    with pytest.raises(ValueError, match="puts scenery outside the task's workspace"):
        env.unwrapped.task.set_layout(env.unwrapped.scene, {"marks": [[0.0, 0.0, 0.0], [1000.0, 0.0, 0.0]]})
    assert env.unwrapped.task.layout() == before


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rgb_array_render(make_env, env_id):
    env = make_env(env_id, render_mode="rgb_array", render_size=128)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8
    assert frame.std() > 5  # a scene, not a blank image
    no_render = make_env(env_id)
    no_render.reset(seed=0)
    assert no_render.render() is None


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("obs_mode", list(OBS_MODES))
def test_observation_keys_dtypes_shapes(make_env, env_id, obs_mode):
    env = make_env(env_id, obs_mode=obs_mode, image_size=64)
    observation, _ = env.reset(seed=0)
    vectors = ("state", "goal") if obs_mode == "robot" else ("observation", "achieved_goal", "desired_goal")
    expected = {*vectors, *OBS_MODES[obs_mode]} - ({"goal"} if "goal" not in observation else set())
    assert set(observation) == expected == set(env.observation_space.spaces)
    shapes = {"rgb": (64, 64, 3), "depth": (64, 64, 1), "seg": (64, 64, 1)}
    for key in OBS_MODES[obs_mode]:
        assert observation[key].shape == shapes[key] and observation[key].dtype == np.uint8
    for key in set(vectors) & set(observation):
        assert observation[key].dtype == np.float32
    assert env.observation_space.contains(observation)
    observation, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(observation)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_segmentation_shows_instrument_and_target(make_env, env_id):
    env = make_env(env_id, obs_mode="rgb_seg")
    observation, _ = env.reset(seed=0)
    labels = set(np.unique(observation["seg"]))
    assert {SegLabel.TISSUE, SegLabel.INSTRUMENT, SegLabel.TARGET} <= labels
    if env_id == "surgisim/NavigateAnatomy-v0":
        assert SegLabel.ANATOMY in labels
    task = env.unwrapped.task
    if hasattr(task, "needle"):
        assert SegLabel.NEEDLE in labels
    if hasattr(task, "thread"):
        assert SegLabel.THREAD in labels


@pytest.mark.parametrize("size", [84, 128])
def test_the_camera_intrinsics_put_the_target_where_the_renderer_draws_it(make_env, size):
    """``Camera.intrinsics`` (what the ROS twin sends as camera_info) against PyBullet's image: the
    target sphere's centre projects onto the centroid of its pixels, to a fifth of a pixel over
    eight episodes (the median: the instrument sometimes hides part of the sphere)."""
    env = make_env("surgisim/NeedleReach-v0", obs_mode="rgb_seg", image_size=size)
    scene, errors = env.unwrapped.scene, []
    for seed in range(8):
        observation, _ = env.reset(seed=seed)
        pixel, depth = scene.camera.project(scene.camera_pose(), observation["desired_goal"].astype(float), size)
        assert depth > 0 and np.all((pixel >= 0) & (pixel < size))
        rows, cols = np.nonzero(observation["seg"][..., 0] == SegLabel.TARGET)
        errors.append(pixel - [cols.mean(), rows.mean()])
    assert np.all(np.abs(np.median(errors, axis=0)) < 0.2)


def test_depth_image_converts_back_to_metres(make_env):
    env = make_env("surgisim/NeedleReach-v0", obs_mode="rgbd", image_size=84)
    observation, _ = env.reset(seed=0)
    scene = env.unwrapped.scene
    pose = scene.camera_pose()
    # Tissue top is z = 0: distance along the optical axis to where the centre ray meets it.
    expected = -pose[2, 3] / pose[2, 2]
    seg = env.unwrapped.scene.render(84, seg=True)["seg"]
    assert seg[42, 42, 0] == SegLabel.TISSUE
    centre = depth_to_metres(observation["depth"][41:43, 41:43, 0]).mean()
    assert abs(centre - expected) < 0.003


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_compute_reward_is_vectorised_and_matches_step(make_env, env_id):
    for reward_type in ("sparse", "dense"):
        env = make_env(env_id, reward_type=reward_type)
        env.reset(seed=1)
        observation, reward, _, _, info = env.step(env.action_space.sample())
        achieved, desired = observation["achieved_goal"], observation["desired_goal"]
        assert env.unwrapped.compute_reward(achieved, desired, info) == pytest.approx(reward)
        batch = np.stack([achieved, desired, achieved])
        rewards = env.unwrapped.compute_reward(batch, np.stack([desired] * 3), np.array([info] * 3))
        assert rewards.shape == (3,)
        assert rewards[0] == pytest.approx(reward) and rewards[2] == pytest.approx(reward)
        assert rewards[1] == pytest.approx(env.unwrapped.compute_reward(desired, desired, info))
        if reward_type == "sparse":
            assert rewards[1] == 0.0  # achieved == desired


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_a_goal_relabelled_from_what_was_achieved_is_reached_there(make_env, env_id):
    """HER's premise (Andrychowicz et al. 2017): a goal replaced by one achieved later in the
    episode is a goal that was reached, at every stage of the task (before a grasp, a hole or
    thread)."""
    env = make_env(env_id)
    expert = make_expert(env.unwrapped)
    observation, _ = env.reset(seed=3)
    expert.reset()
    achieved, done = [observation["achieved_goal"]], False
    while not done:
        observation, _, terminated, truncated, _ = env.step(expert(observation))
        achieved.append(observation["achieved_goal"])
        done = terminated or truncated
    achieved = np.array(achieved)
    assert np.all(env.unwrapped.task.distance(achieved, achieved) < 1e-9)


def test_anatomy_contact_costs_and_fails_the_episode(make_env):
    env = make_env("surgisim/NavigateAnatomy-v0")
    observation, _ = env.reset(seed=0)
    task = env.unwrapped.task
    organ = env.unwrapped.scene.sim.base_pose(task.anatomy[3])[0]
    costs, rewards = [], []
    for _ in range(60):  # drive the tip straight into the large organ
        action = env.unwrapped.action_toward(organ)
        observation, reward, _, _, info = env.step(action)
        costs.append(info["cost"])
        rewards.append(reward)
    assert max(costs) == 1.0
    assert min(rewards) == -1.0 - task.cost_weight  # away from the goal and in contact
    assert not info["is_success"]
    env.unwrapped.task.target.place(observation["achieved_goal"])  # even at the goal, not a success
    assert not env.step(np.zeros(5))[4]["is_success"]


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize(
    "bad_action", [[np.nan] * 7, [np.inf] * 7, [0.0] * 9, [[0.0] * 5], "left", None, [0.5 + 0.5j] * 7], ids=str
)
def test_bad_action_raises_and_changes_nothing(make_env, env_id, bad_action):
    env = make_env(env_id)
    env.reset(seed=2)
    size = env.action_space.shape[0]
    if isinstance(bad_action, list) and np.ndim(bad_action) == 1 and len(bad_action) == 7:  # the right size
        bad_action = bad_action[:size]
    before = env.unwrapped.get_state()
    with pytest.raises(ValueError, match="action"):
        env.step(bad_action)
    assert_same(before, env.unwrapped.get_state())
    reference = make_env(env_id)
    reference.reset(seed=2)
    action = np.full(size, 0.3, dtype=np.float32)
    assert_same(env.step(action)[:4], reference.step(action)[:4])


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("obs_mode", "depth"),
        ("reward_type", "shaped"),
        ("control", "velocity"),
        ("action_frame", "tool"),
        ("render_mode", "human"),
        ("renderer", "vulkan"),
        ("image_size", 0),
        ("image_size", 84.5),
        ("task", "NeedleTie"),
    ],
)
def test_bad_arguments_raise_with_allowed_values(argument, value):
    with pytest.raises(ValueError, match=argument) as error:
        SurgicalEnv(**{argument: value})
    assert "use" in str(error.value)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_moves_bodies_without_reloading(make_env, env_id):
    env = make_env(env_id)
    client = env.unwrapped.scene.sim.client
    env.reset(seed=0)
    bodies = client.getNumBodies()
    for seed in range(1, 6):
        env.reset(seed=seed)
    assert client.getNumBodies() == bodies


def test_step_before_reset_is_an_error():
    env = SurgicalEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(5))
    env.close()


def test_a_closed_env_says_so():
    env = SurgicalEnv(render_mode="rgb_array")
    env.reset(seed=0)
    env.close()
    for call in (lambda: env.reset(seed=1), lambda: env.step(np.zeros(5)), env.render, env.observe):
        with pytest.raises(RuntimeError, match="this env is closed"):
            call()
    env.close()  # closing twice is harmless


def test_egl_renderer_renders_or_falls_back(recwarn):
    env = SurgicalEnv(obs_mode="rgb", renderer="egl")
    observation, _ = env.reset(seed=0)
    assert observation["rgb"].shape == (84, 84, 3) and observation["rgb"].std() > 5
    if env.scene.sim.renderer == "tiny":
        assert any("EGL" in str(warning.message) for warning in recwarn)
    elif not glob.glob("/dev/nvidia*") and not glob.glob("/dev/dri/renderD*"):  # no GPU: Mesa draws on the CPU
        assert any("runs in software" in str(warning.message) for warning in recwarn)
    env.close()


def test_software_opengl_is_told_from_a_gpu_by_the_driver_the_plugin_reports():
    # As PyBullet's EGL plugin prints them: Mesa's CPU drivers, and a GPU's.
    assert software_gl("Vendor = Mesa/X.org\nRenderer = llvmpipe (LLVM 15.0.6, 256 bits)\n") == (
        "llvmpipe (LLVM 15.0.6, 256 bits)"
    )
    assert software_gl("Renderer = softpipe\n") == "softpipe"
    assert software_gl("Vendor = NVIDIA Corporation\nRenderer = NVIDIA H200/PCIe/SSE2\n") is None
    assert software_gl("") is None


def test_many_envs_in_one_process():
    envs = [gym.make("surgisim/NeedleReach-v0") for _ in range(4)]
    first = [env.reset(seed=i)[0]["desired_goal"] for i, env in enumerate(envs)]
    envs[0].close()
    for i, env in enumerate(envs[1:], start=1):
        np.testing.assert_array_equal(env.reset(seed=i)[0]["desired_goal"], first[i])
        env.step(env.action_space.sample())
        env.close()


# What each task keeps privileged, moved in a way a robot's observation must not see (besides the image).
def _move_privileged(env):
    task = env.unwrapped.task
    if hasattr(task, "track_needle"):
        pose = task.needle_pose()
        pose[:3, 3] += [0.01, -0.005, 0.002]
        task.track_needle(pose)
    if hasattr(task, "track_lesion"):
        task.track_lesion(task.lesion() + 0.01, np.full(3, 0.002))
    if task.layout_keys:
        layout = env.unwrapped.layout()
        env.unwrapped.set_layout({key: (np.array(value) + np.append([0.005, 0.005], np.zeros(np.shape(value)[-1] - 2)))
                                  .tolist() for key, value in layout.items()})  # fmt: skip


def test_the_tip_view_is_the_camera_image_magnified_around_the_reported_tip():
    """``tip_zoom`` adds ``tip_rgb``: the endoscope turned towards where the joints put the tip, its
    field of view narrowed that many times. PyBullet's render of it matches what ``magnified`` cuts
    from a four times finer image by the pinhole homography, and the instrument's jaws lie at its
    centre; a zoom without the robot mode, or out of range, is refused."""
    from surgisim.envs.camera import magnified

    env = gym.make("surgisim/NeedlePick-v0", obs_mode="robot", image_size=48, tip_zoom=4)
    observation, _ = env.reset(seed=3)
    model = env.unwrapped
    assert observation["tip_rgb"].shape == model.observation_space["tip_rgb"].shape == (48, 48, 3)
    fov = model.endoscope.fov_deg
    cut = magnified(model.scene.render(192)["rgb"], model.endoscope.intrinsics(192), model.tip_direction(), 4, 48,
                    fov)  # fmt: skip
    assert np.abs(cut.astype(int) - observation["tip_rgb"]).mean() < 4
    wide = model.scene.render(48, seg=True)["seg"][..., 0] == SegLabel.INSTRUMENT
    pose = model.scene.camera_pose()
    pose[:3, :3] = pose[:3, :3] @ magnified_axes(model.tip_direction())
    seg = model.scene.camera.render(pose, 48, False, True, zoom=4)["seg"][..., 0]
    rows, columns = np.nonzero(seg == SegLabel.INSTRUMENT)
    assert np.min(np.hypot(rows - 23, columns - 24)) <= 2 and len(rows) > 2 * wide.sum()  # the jaws, larger
    for kwargs, problem in ((dict(tip_zoom=4), "obs_mode='robot'"), (dict(obs_mode="robot", tip_zoom=20), "1 to 16")):
        with pytest.raises(ValueError, match=problem):
            gym.make("surgisim/NeedlePick-v0", **kwargs)
    with pytest.raises(ValueError, match="drives the endoscope itself"):
        gym.make("surgisim/EndoscopeTrack-v0", obs_mode="robot", tip_zoom=4)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_a_robots_observation_has_no_privileged_pose(env_id):
    """obs_mode="robot" gives the image, the arms' reported state and an operator's goal: moving
    the needle, lesion or scenery changes none but the image, and under kinematic errors the state is
    where the joints say the tip is, not where it is."""
    env = gym.make(env_id, obs_mode="robot", image_size=48, randomize="kinematics")
    observation, _ = env.reset(seed=3)
    model = env.unwrapped
    assert set(observation) == {"rgb", "state"} | ({"goal"} if "goal" in model.observation_space.spaces else set())
    assert ("goal" in observation) == (env_id.split("/")[1].split("-")[0] in
                                       ("NeedleReach", "NavigateAnatomy", "NeedlePick", "NeedleHandover"))  # fmt: skip
    reported = np.concatenate([arm.state() for arm in model.arms]).astype(np.float32)
    np.testing.assert_array_equal(observation["state"], reported)
    true_tip, model_tip = model.arms[0].tip_pose()[:3, 3], model.arms[0].model_tip_pose()[:3, 3]
    assert np.linalg.norm(true_tip - model_tip) > 0.0005 and np.allclose(observation["state"][:3], model_tip, atol=1e-6)
    _move_privileged(env)
    moved = model.observe()
    for key in set(observation) - {"rgb"}:
        np.testing.assert_array_equal(moved[key], observation[key])
    task = model.task
    if hasattr(task, "track_needle"):  # out of view (under the tissue bed), wherever it is, the image is the same
        images = []
        for x in (-0.02, 0.02):
            task.track_needle(make_pose(np.eye(3), np.array([x, 0.0, -0.05])))
            images.append(model.observe()["rgb"])
        np.testing.assert_array_equal(*images)
    env.close()
