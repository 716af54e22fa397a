"""Domain randomisation: seeded, each group changing what it says and nothing else, configs that
fail with the key named, and kinematic errors of the size measured on real dVRKs."""

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

from conftest import ENV_IDS
from surgisim.agents.evaluate import evaluate
from surgisim.envs.randomization import GROUPS, config_path, load_ranges

STATE_KEYS = ("observation", "achieved_goal", "desired_goal")


def rollout(env_id: str, steps: int = 6, seed: int = 3, **kwargs) -> list[dict]:
    """Observations of a seeded episode under the same fixed actions."""
    env = gym.make(env_id, obs_mode="all", **kwargs)
    observations = [env.reset(seed=seed)[0]]
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, *env.action_space.shape))
    for action in actions:
        observations.append(env.step(action)[0])
    env.close()
    return observations


def equal(a: list[dict], b: list[dict], key: str) -> bool:
    return all(np.array_equal(x[key], y[key]) for x, y in zip(a, b, strict=True))


def write_config(tmp_path, document) -> str:
    path = tmp_path / "randomize.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_checks_every_randomised_env(env_id):
    env = gym.make(env_id, obs_mode="rgb", image_size=36, randomize="all")
    check_env(env.unwrapped, skip_render_check=True)  # its seeding check included
    env.close()


def test_the_same_seed_gives_the_same_randomised_episode_and_another_seed_another():
    first = rollout("surgisim/NeedleHandover-v0", randomize="all")
    again = rollout("surgisim/NeedleHandover-v0", randomize="all")
    other = rollout("surgisim/NeedleHandover-v0", randomize="all", seed=4)
    for key in (*STATE_KEYS, "rgb", "depth", "seg"):
        assert equal(first, again, key), key
    assert not equal(first, other, "rgb") and not equal(first, other, "observation")


def test_an_env_keeps_its_draws_through_a_pickle_mid_episode():
    import pickle

    env = gym.make("surgisim/NeedleReach-v0", obs_mode="rgb", randomize="all").unwrapped
    env.reset(seed=5)
    for _ in range(3):
        env.step(env.action_space.sample())
    twin = pickle.loads(pickle.dumps(env))
    action = np.full(env.action_space.shape, 0.3)
    for _ in range(4):  # latency, action and image noise continue the same way
        mine, theirs = env.step(action)[0], twin.step(action)[0]
        assert np.array_equal(mine["rgb"], theirs["rgb"]) and np.array_equal(mine["observation"], theirs["observation"])


def test_appearance_changes_the_images_and_nothing_else():
    plain, varied = (
        rollout("surgisim/NavigateAnatomy-v0"),
        rollout("surgisim/NavigateAnatomy-v0", randomize="appearance"),
    )
    for key in STATE_KEYS:
        assert equal(plain, varied, key), key
    assert not equal(plain, varied, "rgb")


def test_kinematics_moves_the_real_arm_not_what_it_reports_nor_the_task():
    env_id = "surgisim/NeedleReach-v0"
    plain, varied = rollout(env_id, steps=0), rollout(env_id, steps=0, randomize="kinematics")
    # The joints report the same pose; the task drew the same goal; the real tip is elsewhere.
    assert equal(plain, varied, "observation") and equal(plain, varied, "desired_goal")
    assert not equal(plain, varied, "achieved_goal") and not equal(plain, varied, "rgb")


def test_kinematic_errors_put_the_tip_about_3_mm_from_where_the_arm_reports_it():
    # A real dVRK PSM: about 3 mm mean tip error between its kinematic model and the instrument.
    env = gym.make("surgisim/NeedleReach-v0", randomize="kinematics").unwrapped
    errors = []
    for seed in range(40):
        env.reset(seed=seed)
        errors.append(np.linalg.norm(env.scene.psm.tip_pose()[:3, 3] - env.scene.psm.model_tip_pose()[:3, 3]))
    assert 0.0015 < np.mean(errors) < 0.005 and max(errors) < 0.01


def test_control_latency_applies_each_action_that_many_steps_later(tmp_path):
    config = write_config(tmp_path, {"control": {"latency_steps": [2, 2]}})
    env_id = "surgisim/NeedleReach-v0"
    plain = rollout(env_id, steps=4, randomize=None)
    late = rollout(env_id, steps=4, randomize="control", randomize_config=config)
    assert equal(plain[:1], late[:1], "observation")
    for step in (1, 2):  # nothing has arrived yet: the arm holds still
        assert np.array_equal(late[step]["achieved_goal"], late[0]["achieved_goal"])
    for step in (3, 4):  # then the actions of two steps before
        assert np.allclose(late[step]["achieved_goal"], plain[step - 2]["achieved_goal"], atol=1e-9)


def test_control_noise_and_jitter_change_the_motion_only():
    plain, varied = rollout("surgisim/NeedleReach-v0"), rollout("surgisim/NeedleReach-v0", randomize="control")
    assert equal(plain[:1], varied[:1], "rgb") and equal(plain, varied, "desired_goal")
    assert not equal(plain, varied, "achieved_goal")


def test_observation_noise_changes_the_observation_only():
    plain, varied = rollout("surgisim/NeedlePick-v0"), rollout("surgisim/NeedlePick-v0", randomize="observation")
    for key in ("achieved_goal", "desired_goal", "rgb", "depth", "seg"):
        assert equal(plain, varied, key), key
    noise = np.concatenate([v["observation"] - p["observation"] for p, v in zip(plain, varied, strict=True)])
    assert 0 < np.std(noise) < 0.002  # at most 1 mm, as the package's config says


def test_a_config_reads_numbers_as_yaml_1_2_and_no_key_twice(tmp_path):
    path = tmp_path / "ranges.yaml"
    path.write_text("appearance:\n  tint: [1e-3, 2e0]\n")  # PyYAML alone reads 1e-3 as a string
    assert load_ranges(path) == {"appearance": {"tint": (0.001, 2.0)}}
    path.write_text("appearance:\n  tint: [0.9, 1.0]\n  tint: [0.1, 2.0]\n")  # the last won, silently
    with pytest.raises(ValueError, match="line 3: key 'tint' appears twice"):
        load_ranges(path)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"apperance": {"tint": [0.9, 1.1]}}, "'apperance' is not a randomisation group"),
        ({"appearance": {"tnit": [0.9, 1.1]}}, r"appearance\.tnit is not a key of appearance"),
        ({"kinematics": {"rcm_shift_mm": [3, 1]}}, r"kinematics\.rcm_shift_mm: \[3, 1\] is a negative range"),
        ({"appearance": {"image_noise_std": [-2, 4]}}, r"appearance\.image_noise_std: .* goes beyond \[0, 64\]"),
        ({"observation": {"noise_std_mm": [0, float("nan")]}}, r"observation\.noise_std_mm: .* is not finite"),
        ({"control": {"latency_steps": [0, 1.5]}}, r"control\.latency_steps: .* whole numbers"),
        ({"control": {"action_noise_std": "a lot"}}, r"control\.action_noise_std: 'a lot' is not a range"),
        ({"control": ["latency_steps"]}, "control: expected keys with"),
        # Ranges that would stall or break the simulation, or fill memory (found by an adversarial pass).
        ({"appearance": {"blur_sigma_px": [10000, 10000]}}, r"blur_sigma_px: .* goes beyond \[0, 8\]"),
        ({"appearance": {"tissue_texture": [0, 1000000]}}, r"tissue_texture: .* names 1e\+06 textures; at most 16"),
        ({"appearance": {"tissue_texture": [1e20, 1e20]}}, r"tissue_texture: .* goes beyond"),
        ({"appearance": {"fov_deg": [720, 720]}}, r"fov_deg: .* goes beyond \[20, 120\]"),
        ({"appearance": {"camera_shift_mm": [0, 1e9]}}, "camera_shift_mm: .* goes beyond"),
        ({"control": {"period_jitter": [-3, 0]}}, r"period_jitter: .* goes beyond \[-0.5, 0.5\]"),
        ({"control": {"latency_steps": [0, 1000000000]}}, "latency_steps: .* goes beyond"),
        ({"kinematics": {"insertion_offset_mm": [0, 1e9]}}, "insertion_offset_mm: .* goes beyond"),
    ],
)
def test_a_bad_config_is_an_error_naming_the_key(tmp_path, document, message):
    config = write_config(tmp_path, document)
    with pytest.raises(ValueError, match=message):
        gym.make("surgisim/NeedleReach-v0", randomize="all", randomize_config=config)


def test_an_unknown_group_or_unreadable_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="'lighting' is not a randomisation group; use 'all' or some of appearance"):
        gym.make("surgisim/NeedleReach-v0", randomize="appearance,lighting")
    with pytest.raises(ValueError, match="randomize=5: give group names"):
        gym.make("surgisim/NeedleReach-v0", randomize=5)
    with pytest.raises(ValueError, match=r"randomize_config=3\.5: give the path of a YAML file"):
        gym.make("surgisim/NeedleReach-v0", randomize="all", randomize_config=3.5)
    with pytest.raises(ValueError, match=r"nowhere\.yaml: cannot read the randomisation config"):
        gym.make("surgisim/NeedleReach-v0", randomize="all", randomize_config=str(tmp_path / "nowhere.yaml"))
    (tmp_path / "broken.yaml").write_text("appearance: [tint\n")
    with pytest.raises(ValueError, match=r"broken\.yaml: not valid randomisation config: line 2"):
        gym.make("surgisim/NeedleReach-v0", randomize="all", randomize_config=str(tmp_path / "broken.yaml"))
    with pytest.raises(ValueError, match="'all' stands for every group; give it alone"):
        gym.make("surgisim/NeedleReach-v0", randomize="all,appearance")
    with pytest.raises(ValueError, match="does nothing without randomize"):  # was silently ignored
        gym.make("surgisim/NeedleReach-v0", randomize_config=str(config_path("randomize.yaml")))


def test_the_shipped_configs_are_valid_and_cover_every_group():
    for name in ("randomize.yaml", "randomize_heldout.yaml"):
        assert set(load_ranges(config_path(name))) == set(GROUPS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_experts_succeed_under_kinematic_errors(env_id):
    metrics = evaluate(env_id, "expert", episodes=20, seed=200, env_kwargs={"randomize": "kinematics"})
    assert metrics["success_rate"] >= 0.95
