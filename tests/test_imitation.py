"""Learning from demonstrations: datasets checked against the env, replay buffer, behaviour cloning."""

import numpy as np
import pytest
import yaml

from surgisim.agents import checkpoint, imitation
from surgisim.agents.demos import record_demos
from surgisim.agents.models import load_model, load_policy, make_env
from surgisim.agents.train import train

SMALL = {
    "n_timesteps": 300,
    "her": True,
    "learning_rate": 0.001,
    "buffer_size": 5000,
    "batch_size": 32,
    "learning_starts": 100,
    "net_arch": [64, 64],
    "eval_freq": 300,
    "eval_episodes": 2,
    "checkpoint_freq": 300,
    "bc_steps": 0,
    "bc_weight": 1.0,
}
INSERT = "surgisim/NeedleInsert-v0"


@pytest.fixture(scope="module")
def insert_demos(tmp_path_factory):
    return record_demos(INSERT, tmp_path_factory.mktemp("demos") / "insert", episodes=4, seed=0)


def small_config(tmp_path, **changes):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump({"goal_task": {**SMALL, **changes}}))
    return path


def settings(env_id, obs_mode="state"):
    return {"env_id": env_id, "algo": "sac", "seed": 0, "obs_mode": obs_mode, "hyperparameters": {}}


def test_demonstrations_are_whole_transitions(insert_demos):
    env = make_env(settings(INSERT))
    demos = imitation.Demonstrations(insert_demos, env)
    env.close()
    assert demos.episodes == 4 and demos.terminations.sum() == 4  # the expert finished every episode
    assert demos.actions.shape == (len(demos), 5)
    # The next observation of one transition is the observation of the following one, within an episode.
    ends = np.flatnonzero(demos.terminations | demos.truncations)
    inside = np.setdiff1d(np.arange(len(demos) - 1), ends)
    np.testing.assert_array_equal(demos.next_observations["observation"][inside],
                                  demos.observations["observation"][inside + 1])  # fmt: skip
    assert all("cost" in info for info in demos.infos)


def test_training_with_demos_fills_the_buffer_and_clones_the_expert(tmp_path, insert_demos):
    run = train(INSERT, steps=300, run_dir=tmp_path / "run", progress_bar=False, demos=insert_demos,
                config_file=small_config(tmp_path, bc_steps=600), n_envs=2)  # fmt: skip
    env = make_env(settings(INSERT))
    demos = imitation.Demonstrations(insert_demos, env)
    env.close()
    model = load_model(run)
    model.load_replay_buffer(checkpoint.current(run)[checkpoint.REPLAY_BUFFER])
    # Each demonstrated transition fills both envs' slots; then 300 steps over 2 envs.
    assert model.replay_buffer.size() == len(demos) + 150
    stored = model.replay_buffer.actions[: len(demos), :, :]
    np.testing.assert_allclose(stored[:, 0], demos.actions, atol=1e-6)
    np.testing.assert_allclose(stored[:, 1], demos.actions, atol=1e-6)
    assert yaml.safe_load((run / "config.yaml").read_text())["demos"] == str(insert_demos.resolve())
    # The normalisation started from the demonstrations' statistics (and then kept running).
    normalizer = load_policy(run).normalizer
    assert normalizer.obs_rms["observation"].count > len(demos)


def test_behaviour_cloning_brings_the_policy_to_the_demonstrated_actions(tmp_path, insert_demos):
    from stable_baselines3.common.vec_env import VecNormalize

    from surgisim.agents.train import _vec_env, build_model

    run_settings = {**settings(INSERT), "hyperparameters": dict(SMALL)}
    model = build_model(run_settings, VecNormalize(_vec_env(run_settings), norm_reward=False), tmp_path)
    env = make_env(settings(INSERT))
    demos = imitation.Demonstrations(insert_demos, env)
    env.close()
    imitation.seed_normalizer(model, demos)

    def error() -> float:
        tensors = imitation.tensors(model, demos.observations)
        return float(((imitation.policy_action(model, tensors).detach().numpy() - demos.actions) ** 2).mean())

    before = error()
    imitation.behaviour_clone(model, demos, steps=400, seed=0)
    assert error() < before / 5


def test_a_dataset_from_another_env_is_refused_and_nothing_written(tmp_path, insert_demos):
    with pytest.raises(ValueError, match="recorded on surgisim/NeedleInsert-v0, not surgisim/NeedlePick-v0") as error:
        train("surgisim/NeedlePick-v0", run_dir=tmp_path / "run", demos=insert_demos, progress_bar=False,
              config_file=small_config(tmp_path))  # fmt: skip
    assert str(insert_demos) in str(error.value)
    assert not (tmp_path / "run").exists()


def test_a_dataset_without_the_observations_the_policy_needs_is_refused(insert_demos):
    env = make_env(settings(INSERT, obs_mode="rgb"))
    with pytest.raises(ValueError, match=r"observations lack 'rgb'.*same --obs-mode"):
        imitation.Demonstrations(insert_demos, env)
    env.close()


def test_a_damaged_dataset_is_named(tmp_path, insert_demos):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(insert_demos, damaged)
    (damaged / "data" / "main_data.hdf5").write_bytes(b"\x89HDF not really")
    env = make_env(settings(INSERT))
    with pytest.raises(ValueError, match="cannot read the demonstrations") as error:
        imitation.Demonstrations(damaged, env)
    env.close()
    assert str(damaged) in str(error.value)


def test_the_cli_names_a_mismatched_dataset_and_writes_nothing(tmp_path, insert_demos):
    import subprocess
    import sys

    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "surgisim.agents.cli", "train", "NeedlePick", "--demos", str(insert_demos),
         "--run-dir", str(run)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert str(insert_demos) in result.stderr and "recorded on surgisim/NeedleInsert-v0" in result.stderr
    assert not run.exists()
