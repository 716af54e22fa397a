"""Training machinery: configs, run folders, checkpoints, resume after a kill, loading models."""

import csv
import json
import signal
import subprocess
import sys
import time

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import yaml

from surgisim.agents.config import ConfigError, load_config
from surgisim.agents.evaluate import evaluate
from surgisim.agents.export import OnnxPolicy, export_onnx
from surgisim.agents.train import load_model, load_policy, train

SMALL = {
    "n_timesteps": 400,
    "her": True,
    "n_sampled_goal": 4,
    "goal_selection_strategy": "future",
    "learning_rate": 0.001,
    "buffer_size": 5000,
    "batch_size": 32,
    "gamma": 0.95,
    "tau": 0.05,
    "learning_starts": 100,
    "train_freq": 1,
    "gradient_steps": 1,
    "net_arch": [32, 32],
    "eval_freq": 200,
    "eval_episodes": 2,
    "checkpoint_freq": 100,
}


@pytest.fixture
def small_config(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump({"goal_task": SMALL}))
    return path


def eval_rows(run):
    with (run / "eval.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_shipped_configs_load_with_anchors():
    config = load_config("sac", "surgisim/NeedleReach-v0")
    assert config["n_timesteps"] == 10000 and config["her"] is True and config["net_arch"] == [256, 256]
    assert load_config("sac", "surgisim/SutureThrow-v0")["n_timesteps"] == 20000  # falls back on goal_task
    for algo in ("td3", "tqc"):
        assert load_config(algo, "surgisim/NeedleReach-v0")["batch_size"] == 256
    assert load_config("ppo", "surgisim/EndoscopeTrack-v0")["image_size"] == 64
    assert load_config("sac", "surgisim/NeedlePick-v0")["bc_steps"] > 0


@pytest.mark.parametrize(
    ("entry", "message"),
    [({"n_timesteps": 10, "learning_rat": 0.1}, "unknown key 'learning_rat'"),
     ({"gamma": 1.5}, "gamma = 1.5 is not valid"),
     ({"net_arch": "big"}, "net_arch"),
     ({"her": "yes"}, "her")],
)  # fmt: skip
def test_bad_configs_name_the_file_and_key(tmp_path, entry, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"surgisim/NeedleReach-v0": entry}))
    with pytest.raises(ConfigError, match=message) as error:
        load_config("sac", "surgisim/NeedleReach-v0", path)
    assert str(path) in str(error.value)


def test_run_folder_holds_every_artifact_and_resume_continues(tmp_path, small_config):
    run = train("surgisim/NeedleReach-v0", steps=400, run_dir=tmp_path / "run", progress_bar=False,
                config_file=small_config)  # fmt: skip
    artifacts = {"config.yaml", "command.txt", "model.zip", "replay_buffer.pkl", "vecnormalize.pkl", "eval.csv",
                 "success.png", "final_policy.mp4", "tensorboard"}  # fmt: skip
    assert artifacts <= {path.name for path in run.iterdir()}
    assert load_policy(run).normalizer is not None
    assert iio.imread(run / "success.png").shape[:2] == (320, 500)
    assert iio.imread(run / "final_policy.mp4").shape[1:] == (128, 128, 3)
    settings = yaml.safe_load((run / "config.yaml").read_text())
    assert settings["env_id"] == "surgisim/NeedleReach-v0" and settings["hyperparameters"]["batch_size"] == 32
    assert [row["timesteps"] for row in eval_rows(run)] == ["0", "200", "400"]
    model = load_model(run)
    assert model.num_timesteps == 400

    train("surgisim/NeedleReach-v0", steps=600, resume=run, progress_bar=False)
    resumed = load_model(run)
    resumed.load_replay_buffer(run / "replay_buffer.pkl")
    assert resumed.num_timesteps == 600
    assert resumed.replay_buffer.size() == 600  # the first 400 transitions were kept
    assert [row["timesteps"] for row in eval_rows(run)] == ["0", "200", "400", "600"]
    assert len((run / "command.txt").read_text().splitlines()) == 2

    metrics = evaluate("surgisim/NeedleReach-v0", str(run), episodes=2)
    assert metrics["episodes"] == 2

    # Export: onnxruntime alone gives the SB3 policy's actions (tolerance 1e-5).
    exported = export_onnx(run, tmp_path / "policy.onnx")
    with pytest.raises(FileExistsError, match="--force"):
        export_onnx(run, exported)
    onnx_policy, sb3_policy = OnnxPolicy(exported), load_policy(run)
    env = gym.make("surgisim/NeedleReach-v0")
    for seed in range(5):
        observation, _ = env.reset(seed=seed)
        for _ in range(4):
            expected = sb3_policy(observation)
            np.testing.assert_allclose(onnx_policy(observation), expected, atol=1e-5)
            observation, *_ = env.step(expected)
    env.close()
    assert evaluate("surgisim/NeedleReach-v0", str(exported), episodes=2)["episodes"] == 2


PIXEL = {"n_timesteps": 256, "n_envs": 2, "n_steps": 64, "batch_size": 32, "n_epochs": 1, "image_size": 36,
         "reward_type": "dense", "net_arch": [32], "eval_freq": 128, "eval_episodes": 1,
         "checkpoint_freq": 128}  # fmt: skip


def test_pixel_policy_trains_with_ppo_in_two_processes_and_exports(tmp_path):
    config = tmp_path / "ppo.yaml"
    config.write_text(yaml.safe_dump({"surgisim/EndoscopeTrack-v0": PIXEL}))
    run = train("surgisim/EndoscopeTrack-v0", algo="ppo", obs_mode="rgbd", run_dir=tmp_path / "run",
                progress_bar=False, config_file=config)  # fmt: skip
    assert list((run / "tensorboard").glob("ppo_*/events.out.tfevents.*"))
    assert [row["timesteps"] for row in eval_rows(run)] == ["0", "128", "256"]
    policy = load_policy(run)
    assert set(policy.keys) == {"rgb", "depth"}  # images only: the state holds the lesion's true position
    assert policy.env_kwargs == {"obs_mode": "rgbd", "image_size": 36}
    exported = OnnxPolicy(export_onnx(run, tmp_path / "pixels.onnx"))
    assert exported.env_kwargs == policy.env_kwargs
    env = gym.make("surgisim/EndoscopeTrack-v0", obs_mode="rgbd", image_size=36)
    observation, _ = env.reset(seed=3)
    for _ in range(5):
        expected = policy(observation)
        np.testing.assert_allclose(exported(observation), expected, atol=1e-5)
        observation, *_ = env.step(expected)
    env.close()
    # evaluate makes the env the policy needs, whatever obs_mode it was asked for.
    assert evaluate("surgisim/EndoscopeTrack-v0", str(tmp_path / "pixels.onnx"), episodes=1)["episodes"] == 1


def test_settings_of_another_algorithm_are_refused(tmp_path):
    config = tmp_path / "mixed.yaml"
    config.write_text(yaml.safe_dump({"goal_task": {"n_steps": 64, "her": True}}))
    with pytest.raises(ConfigError, match="n_steps is not a setting of sac"):
        load_config("sac", "surgisim/NeedleReach-v0", config)
    with pytest.raises(ConfigError, match="her is not a setting of ppo"):
        load_config("ppo", "surgisim/NeedleReach-v0", config)


def test_her_with_pixels_is_refused(tmp_path, small_config):
    with pytest.raises(ValueError, match="--no-her"):
        train("surgisim/NeedleReach-v0", obs_mode="rgb", run_dir=tmp_path / "run", config_file=small_config)
    assert not (tmp_path / "run").exists()


def test_a_run_folder_is_never_overwritten(tmp_path, small_config):
    run = train("surgisim/NeedleReach-v0", steps=100, run_dir=tmp_path / "run", progress_bar=False,
                config_file=small_config)  # fmt: skip
    before = (run / "model.zip").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        train("surgisim/NeedleReach-v0", steps=100, run_dir=run, progress_bar=False, config_file=small_config)
    assert (run / "model.zip").read_bytes() == before


def test_resume_after_the_process_is_killed(tmp_path, small_config):
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "surgisim.agents.cli", "train", "NeedleReach", "--steps", "100000",
               "--run-dir", str(run), "--config", str(small_config)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "replay_buffer.pkl").exists() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoint = load_model(run).num_timesteps
    assert checkpoint >= 100
    train("surgisim/NeedleReach-v0", steps=checkpoint + 100, resume=run, progress_bar=False)
    assert load_model(run).num_timesteps == checkpoint + 100


@pytest.mark.parametrize("damaged", ["vecnormalize.pkl", "replay_buffer.pkl", "config.yaml"])
def test_resume_from_a_damaged_run_says_which_file_and_changes_nothing(tmp_path, small_config, damaged):
    run = train("surgisim/NeedleReach-v0", steps=100, run_dir=tmp_path / "run", progress_bar=False,
                config_file=small_config)  # fmt: skip
    (run / damaged).write_bytes(b"\x00 not what it should be: [")
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    with pytest.raises(ValueError, match=damaged):
        train("surgisim/NeedleReach-v0", steps=200, resume=run, progress_bar=False)
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before


def test_corrupt_onnx_policy_is_reported(tmp_path):
    bad = tmp_path / "policy.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="not a loadable ONNX policy"):
        OnnxPolicy(bad)


def test_corrupt_model_file_is_reported(tmp_path):
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load a model"):
        load_model(bad)
    result = subprocess.run(
        [sys.executable, "-m", "surgisim.agents.cli", "evaluate", "NeedleReach", "--policy", str(bad), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2 and str(bad) in result.stderr
    assert not result.stdout.strip() or json.loads(result.stdout) is None
