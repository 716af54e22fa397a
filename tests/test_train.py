"""Training machinery: configs, run folders, checkpoints, resume after a kill, loading models."""

import csv
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import onnx
import pytest
import yaml

from surgisim.agents import checkpoint
from surgisim.agents.cli import build_parser
from surgisim.agents.config import ConfigError, load_config
from surgisim.agents.demos import load_demos
from surgisim.agents.evaluate import evaluate
from surgisim.agents.export import OnnxPolicy, export_onnx
from surgisim.agents.models import load_model, load_policy
from surgisim.agents.train import train

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


def files_of(folder):
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


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
    artifacts = {"config.yaml", "command.txt", "checkpoint.json", "checkpoints", "eval.csv", "success.png",
                 "final_policy.mp4", "tensorboard"}  # fmt: skip
    assert artifacts <= {path.name for path in run.iterdir()}
    saved = checkpoint.current(run)
    assert saved.timesteps == 400 and list((run / "checkpoints").iterdir()) == [saved.folder]  # older sets removed
    assert set(saved.files) == {"model.zip", "replay_buffer.pkl", "vecnormalize.pkl", "config.yaml"}
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
    resumed.load_replay_buffer(checkpoint.current(run)["replay_buffer.pkl"])
    assert resumed.num_timesteps == 600
    assert resumed.replay_buffer.size() == 600  # the first 400 transitions were kept
    assert [row["timesteps"] for row in eval_rows(run)] == ["0", "200", "400", "600"]
    # command.txt: each invocation as a surgisim train command that the CLI takes and that asks for the same run.
    first, second = (build_parser().parse_args(shlex.split(line)[1:]) for line in (run / "command.txt").open())
    assert (first.env_id, first.algo, first.seed, first.steps) == ("surgisim/NeedleReach-v0", "sac", 0, 400)
    assert (first.config, first.run_dir, first.resume) == (small_config.resolve(), run.resolve(), None)
    assert (second.env_id, second.resume, second.steps, second.config) == (first.env_id, run.resolve(), 600, None)

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
    # Whole episodes agree too: the run folder and the exported file are the same policy.
    from_run, from_file = (evaluate("surgisim/NeedleReach-v0", str(path), episodes=2) for path in (run, exported))
    assert from_file["mean_episode_length"] == from_run["mean_episode_length"]
    assert from_file["mean_final_distance_mm"] == pytest.approx(from_run["mean_final_distance_mm"], abs=1e-3)


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
    # evaluate makes the env the policy needs, whatever obs_mode it was asked for (here state, the default).
    from_file = evaluate("surgisim/EndoscopeTrack-v0", str(tmp_path / "pixels.onnx"), episodes=1, seed=3)
    from_run = evaluate("surgisim/EndoscopeTrack-v0", str(run), episodes=1, seed=3)
    assert from_file["mean_final_distance_mm"] == pytest.approx(from_run["mean_final_distance_mm"], abs=1e-3)


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
    before = files_of(run)
    with pytest.raises(FileExistsError, match="--resume"):
        train("surgisim/NeedleReach-v0", steps=100, run_dir=run, progress_bar=False, config_file=small_config)
    assert files_of(run) == before


# A checkpoint after every step: most of the time goes into writing them, so most kills land in a write
# (measured: 11 of 20).
KILLED = {**SMALL, "n_timesteps": 1_000_000, "buffer_size": 20_000, "learning_starts": 50, "checkpoint_freq": 1,
          "eval_freq": 1_000_000, "eval_episodes": 1}  # fmt: skip
CLI = [sys.executable, "-m", "surgisim.agents.cli"]


def assert_consistent(run, previous=0):
    """The run's current checkpoint is one complete set: model, replay buffer and normalisation
    all at the manifest's step count, no transition lost. Returns that step count."""
    saved = checkpoint.current(run)
    model = load_model(run)
    model.load_replay_buffer(saved["replay_buffer.pkl"])
    assert model.num_timesteps == saved.timesteps >= previous
    assert model.replay_buffer.size() == saved.timesteps  # one env, buffer larger than the run
    assert load_policy(run).normalizer.obs_rms["observation"].count > saved.timesteps
    return saved.timesteps


def assert_no_leftovers(run):
    saved = checkpoint.current(run)
    assert list((run / "checkpoints").iterdir()) == [saved.folder]
    assert not [path for path in run.iterdir() if ".surgisim-" in path.name]


@pytest.mark.expensive
def test_sigkill_at_random_instants_always_leaves_a_complete_checkpoint(tmp_path):
    config = tmp_path / "killed.yaml"
    config.write_text(yaml.safe_dump({"goal_task": KILLED}))
    run = tmp_path / "run"
    rng = np.random.default_rng(0)
    steps, kills = 0, 0
    while kills < 20:
        first = kills == 0
        command = [*CLI, "train", "NeedleReach", *(["--run-dir", str(run), "--config", str(config)] if first
                                                 else ["--resume", str(run)])]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.time()
        if first:  # it gets as far as a checkpoint, however slow the machine: that is the start-up time
            while not (run / "checkpoint.json").exists() and time.time() < started + 120:
                time.sleep(0.05)
            startup = time.time() - started
        # Later kills fall in start-up, loading and training alike.
        time.sleep(rng.uniform(0.0, 1.0) if first else rng.uniform(0.6, 1.6) * startup)
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        if (run / "checkpoint.json").exists():
            steps = assert_consistent(run, steps)
    assert steps > KILLED["learning_starts"]  # training went on between kills
    train("surgisim/NeedleReach-v0", steps=steps + 40, resume=run, progress_bar=False)
    assert assert_consistent(run) == steps + 40
    assert_no_leftovers(run)


# A small training run in a child process that dies (os._exit: no cleanup, as after SIGKILL) while
# writing one file of its second checkpoint, when half of that file is on disk; or, for "old set",
# once the second set is complete and named, before the first is removed.
DIE_WHILE_WRITING = """
import os, pathlib, sys
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecNormalize
from surgisim.agents import checkpoint
from surgisim.agents.cli import main

target, run, config = sys.argv[1:]
writes = []

def written(path):
    writes.append(path)
    if len(writes) == 2:
        os.truncate(path, os.path.getsize(path) // 2)
        os._exit(9)

def dying(original):
    def write(self, path, *args, **kwargs):
        result = original(self, path, *args, **kwargs)
        written(path)
        return result
    return write

if target in ("model.zip", "replay_buffer.pkl", "vecnormalize.pkl"):
    owner, method = {"model.zip": (BaseAlgorithm, "save"), "vecnormalize.pkl": (VecNormalize, "save"),
                     "replay_buffer.pkl": (OffPolicyAlgorithm, "save_replay_buffer")}[target]
    setattr(owner, method, dying(getattr(owner, method)))
elif target == "config.yaml":
    write_text = pathlib.Path.write_text
    def write_set_config(self, text):
        write_text(self, text)
        if self.parent.parent.name == "checkpoints":
            written(self)
    pathlib.Path.write_text = write_set_config
elif target == "checkpoint.json":
    synced = checkpoint._write_synced
    def write_manifest(path, text):
        synced(path, text)
        written(path)
    checkpoint._write_synced = write_manifest
else:
    checkpoint.remove = lambda path: os._exit(9)
sys.exit(main(["train", "NeedleReach", "--run-dir", run, "--config", config]))
"""


@pytest.mark.parametrize("target", ["model.zip", "replay_buffer.pkl", "vecnormalize.pkl", "config.yaml",
                                    "checkpoint.json", "old set"])  # fmt: skip
def test_death_while_writing_each_file_keeps_the_previous_set(tmp_path, target):
    config = tmp_path / "killed.yaml"
    config.write_text(yaml.safe_dump({"goal_task": {**KILLED, "checkpoint_freq": 20}}))
    run = tmp_path / "run"
    died = subprocess.run([sys.executable, "-c", DIE_WHILE_WRITING, target, str(run), str(config)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert died.returncode == 9, died.stderr
    assert len(list((run / "checkpoints").iterdir())) == 2  # the killed write left its set behind
    expected = 40 if target == "old set" else 20
    assert assert_consistent(run) == expected
    train("surgisim/NeedleReach-v0", steps=expected + 20, resume=run, progress_bar=False)
    assert assert_consistent(run) == expected + 20
    assert_no_leftovers(run)


@pytest.mark.parametrize("damaged", ["vecnormalize.pkl", "replay_buffer.pkl", "config.yaml", "eval.csv"])
def test_resume_from_a_damaged_run_says_which_file_and_changes_nothing(tmp_path, small_config, damaged):
    run = train("surgisim/NeedleReach-v0", steps=100, run_dir=tmp_path / "run", progress_bar=False,
                config_file=small_config)  # fmt: skip
    path = run / damaged if damaged in ("config.yaml", "eval.csv") else checkpoint.current(run)[damaged]
    size = path.stat().st_size
    path.write_bytes(b"\x00 not what it should be: [".ljust(size, b"x"))  # the size the manifest records
    before = files_of(run)
    with pytest.raises(ValueError, match=damaged):
        train("surgisim/NeedleReach-v0", steps=200, resume=run, progress_bar=False)
    assert files_of(run) == before


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
    assert result.stdout == ""  # no half-made metrics for a script to read


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished")
    config = folder / "small.yaml"
    config.write_text(yaml.safe_dump({"goal_task": SMALL}))
    return train("surgisim/NeedleReach-v0", steps=100, run_dir=folder / "run", progress_bar=False, config_file=config)


@pytest.fixture
def run_copy(finished_run, tmp_path):
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


@pytest.mark.parametrize("missing", ["vecnormalize.pkl", "replay_buffer.pkl", "model.zip"])
def test_a_checkpoint_missing_a_file_is_named_everywhere_and_nothing_runs(run_copy, tmp_path, missing):
    path = checkpoint.current(run_copy)[missing]
    path.unlink()
    before = files_of(run_copy)
    with pytest.raises(ValueError, match=f"{path} is missing"):
        train("surgisim/NeedleReach-v0", steps=200, resume=run_copy, progress_bar=False)
    if missing != "replay_buffer.pkl":  # a policy needs the model and its normalisation, not the buffer
        with pytest.raises(ValueError, match=f"{path} is missing"):
            evaluate("surgisim/NeedleReach-v0", str(run_copy), episodes=1)
        with pytest.raises(ValueError, match=f"{path} is missing"):
            export_onnx(run_copy, tmp_path / "policy.onnx")
    assert files_of(run_copy) == before and not (tmp_path / "policy.onnx").exists()


def test_a_model_file_without_its_normalisation_is_refused(run_copy):
    saved = checkpoint.current(run_copy)
    saved["vecnormalize.pkl"].unlink()
    with pytest.raises(ValueError, match=r"vecnormalize.pkl is missing: the policy of .* needs"):
        load_policy(saved["model.zip"])


def test_another_tasks_policy_is_refused_with_both_named(finished_run, tmp_path):
    with pytest.raises(ValueError, match="trained on surgisim/NeedleReach-v0, not surgisim/EndoscopeTrack-v0"):
        evaluate("surgisim/EndoscopeTrack-v0", str(finished_run), episodes=1)
    endoscope = files("surgisim.assets") / "policies" / "EndoscopeTrack-v0.onnx"
    with pytest.raises(ValueError, match="trained on surgisim/EndoscopeTrack-v0, not surgisim/NeedleReach-v0"):
        evaluate("surgisim/NeedleReach-v0", str(endoscope), episodes=1)
    anonymous = onnx.load(str(endoscope))  # a file that does not say what it was trained on
    del anonymous.metadata_props[:]
    onnx.save(anonymous, str(tmp_path / "anonymous.onnx"))
    with pytest.raises(ValueError, match=r"takes 'observation' of shape \(\d+,\); surgisim/NeedleReach-v0 gives"):
        evaluate("surgisim/NeedleReach-v0", str(tmp_path / "anonymous.onnx"), episodes=1)


def test_a_run_killed_before_its_first_checkpoint_can_be_resumed(tmp_path, small_config):
    run = tmp_path / "early"
    process = subprocess.Popen([*CLI, "train", "NeedleReach", "--run-dir", str(run), "--config", str(small_config),
                                "--steps", "100000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while not (run / "eval.csv").exists() and time.time() < deadline:  # written at step 0, before the checkpoints
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "checkpoint.json").exists() and (run / "config.yaml").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        train("surgisim/NeedleReach-v0", run_dir=run, config_file=small_config, progress_bar=False)
    with pytest.raises(ValueError, match=r"no checkpoint yet .* --resume"):
        evaluate("surgisim/NeedleReach-v0", str(run), episodes=1)
    train("surgisim/NeedleReach-v0", steps=200, resume=run, progress_bar=False)
    assert checkpoint.current(run).timesteps == 200
    assert [row["timesteps"] for row in eval_rows(run)] == ["0", "200"]  # step 0 measured once


def decoy(folder):
    """A folder of a user's own files (which must survive whatever surgisim does next door)."""
    (folder / "thesis").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "thesis" / "ch1.tex").write_text("\\chapter{Mine}")
    return files_of(folder)


@pytest.mark.parametrize("where", ["another disk", "the runs folder"])
def test_a_resume_never_follows_a_link_out_of_the_run(run_copy, tmp_path, where):
    if where == "another disk":  # checkpoints moved to a bigger disk, a link left in their place
        target = tmp_path / "big-disk" / "checkpoints"
        shutil.move(run_copy / "checkpoints", target)
        os.symlink(target, run_copy / "checkpoints")
    else:  # a relative link up to the folder that holds this run and its siblings
        target = tmp_path
        shutil.rmtree(run_copy / "checkpoints")
        os.symlink("..", run_copy / "checkpoints")
    mine = decoy(target / "other")
    theirs, before = files_of(target), files_of(run_copy)
    with pytest.raises(ValueError, match=r"checkpoints -> .*: a symbolic link in a run folder"):
        train("surgisim/NeedleReach-v0", steps=200, resume=run_copy, progress_bar=False)
    result = subprocess.run([*CLI, "train", "NeedleReach", "--resume", str(run_copy), "--steps", "200"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "symbolic link" in result.stderr and "Traceback" not in result.stderr
    assert files_of(target / "other") == mine and files_of(target) == theirs and files_of(run_copy) == before


def test_a_missing_manifest_is_rebuilt_from_the_newest_complete_set(run_copy, tmp_path):
    saved = checkpoint.current(run_copy)
    (run_copy / "checkpoints" / "README.txt").write_text("not a set: never removed")
    killed = run_copy / "checkpoints" / f"{saved.timesteps + 100:09d}-killed"  # a writer killed mid-set
    shutil.copytree(saved.folder, killed)
    (killed / "model.zip").write_bytes((killed / "model.zip").read_bytes()[:-100])
    (run_copy / "checkpoint.json").unlink()
    history = eval_rows(run_copy)
    policy = load_policy(run_copy)  # evaluate, export: from the complete set, writing nothing
    assert policy.model.num_timesteps == saved.timesteps and not (run_copy / "checkpoint.json").exists()
    result = subprocess.run([*CLI, "train", "NeedleReach", "--resume", str(run_copy), "--steps", "200"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"continuing from the complete set at {saved.timesteps} steps" in result.stderr
    assert checkpoint.current(run_copy).timesteps == 200 and not killed.exists()
    assert eval_rows(run_copy)[: len(history)] == history  # the run's history kept, not started again
    assert (run_copy / "checkpoints" / "README.txt").exists()


@pytest.mark.parametrize("damage", ["a folder", "garbage", "no complete set"])
def test_a_damaged_manifest_is_refused_and_nothing_is_removed(run_copy, damage):
    manifest = run_copy / "checkpoint.json"
    manifest.unlink()
    if damage == "a folder":
        manifest.mkdir()
        (manifest / "keep.txt").write_text("mine")
    elif damage == "garbage":
        manifest.write_text("{not json")
    else:
        for model in (run_copy / "checkpoints").glob("*/model.zip"):
            model.write_bytes(b"PK truncated")
    before = files_of(run_copy)
    message = {"a folder": "must be a regular file", "garbage": "move checkpoint.json away and resume again",
               "no complete set": "no set in .* is complete"}[damage]  # fmt: skip
    with pytest.raises(ValueError, match=message):
        train("surgisim/NeedleReach-v0", steps=200, resume=run_copy, progress_bar=False)
    with pytest.raises(ValueError, match=message):  # not "the run stopped before its first checkpoint"
        evaluate("surgisim/NeedleReach-v0", str(run_copy), episodes=1)
    assert files_of(run_copy) == before


@pytest.mark.parametrize(
    ("asked", "message"),
    [({"env_id": "surgisim/EndoscopeTrack-v0"}, "started with env_id 'surgisim/NeedleReach-v0'"),
     ({"algo": "td3"}, "started with algo 'sac', not 'td3'"), ({"seed": 3}, "started with seed 0, not 3"),
     ({"obs_mode": "rgb"}, "started with obs_mode 'state'"), ({"her": False}, "started with her True"),
     ({"n_envs": 2}, "started with n_envs 1"), ({"config_file": "other.yaml"}, "leave out --config")],
)  # fmt: skip
def test_resume_refuses_settings_other_than_the_runs(run_copy, asked, message):
    before = files_of(run_copy)
    arguments = {"env_id": "surgisim/NeedleReach-v0", **asked}
    with pytest.raises(ValueError, match=re.escape(message)):
        train(**arguments, steps=200, resume=run_copy, progress_bar=False)
    assert files_of(run_copy) == before


def test_cli_resume_with_another_algorithm_is_one_line(run_copy):
    result = subprocess.run([*CLI, "train", "NeedleReach", "--resume", str(run_copy), "--algo", "td3"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "not 'td3'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [(".inf", "learning_rate = inf is not valid"), (".nan", "learning_rate = nan"), ("10", "learning_rate = 10")],
)
def test_learning_rates_that_cannot_train_are_refused(tmp_path, value, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"goal_task:\n  learning_rate: {value}\n")
    with pytest.raises(ConfigError, match=message):
        load_config("sac", "surgisim/NeedleReach-v0", path)


def test_yaml_numbers_read_as_numbers_and_keys_once(tmp_path):
    path = tmp_path / "sci.yaml"
    path.write_text("goal_task:\n  learning_rate: 3e-4\n  buffer_size: 1_000_000\n  gamma: 9.5E-1\n")
    config = load_config("sac", "surgisim/NeedleReach-v0", path)
    assert config == {"learning_rate": 0.0003, "buffer_size": 1_000_000, "gamma": 0.95}
    path.write_text("goal_task:\n  gamma: 0.95\n  gamma: 0.99\n")
    with pytest.raises(ConfigError, match="line 3: key 'gamma' appears twice"):
        load_config("sac", "surgisim/NeedleReach-v0", path)


def test_her_learning_before_an_episode_can_end_is_refused(tmp_path):
    path = tmp_path / "early.yaml"
    path.write_text(yaml.safe_dump({"goal_task": {**SMALL, "learning_starts": 10}}))
    with pytest.raises(ValueError, match=r"learning_starts 10 is shorter than an episode of .*NeedleReach-v0 \(50"):
        train("surgisim/NeedleReach-v0", run_dir=tmp_path / "run", config_file=path, progress_bar=False)
    assert not (tmp_path / "run").exists()


def test_a_run_folder_whose_name_is_not_utf8_is_refused_before_anything_is_written(tmp_path, small_config):
    run = os.fsencode(tmp_path) + b"/run-\xff"
    result = subprocess.run([*CLI, "train", "NeedleReach", "--steps", "100", "--run-dir", run, "--config",
                             str(small_config)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 2 and "UTF-8" in result.stderr and "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["small.yaml"]


def test_the_algorithm_names_are_the_classes_sb3_gives():
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    from surgisim.agents.config import ALGORITHM_NAMES, OFF_POLICY
    from surgisim.agents.models import ALGORITHMS

    assert tuple(ALGORITHMS) == ALGORITHM_NAMES
    assert tuple(name for name, cls in ALGORITHMS.items() if issubclass(cls, OffPolicyAlgorithm)) == OFF_POLICY


def _scalars(run):
    """TensorBoard's scalars of a run, as TensorBoard reads them: {tag: [(step, value), ...]}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = {}
    for folder in sorted((run / "tensorboard").iterdir()):
        events = EventAccumulator(str(folder))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((event.step, event.value) for event in events.Scalars(tag))
    return scalars


def test_a_run_ends_with_an_evaluation_of_its_last_step_and_logs_episode_curves(tmp_path):
    config = tmp_path / "odd.yaml"
    config.write_text(yaml.safe_dump({"goal_task": {**SMALL, "n_timesteps": 350}}))  # not a multiple of 200
    run = train("surgisim/NeedleReach-v0", config_file=config, run_dir=tmp_path / "run", progress_bar=False)
    assert [int(row["timesteps"]) for row in eval_rows(run)] == [0, 200, 350]
    scalars = _scalars(run)
    assert scalars["eval/success_rate"][-1][0] == 350
    assert {"rollout/ep_rew_mean", "rollout/ep_len_mean"} <= set(scalars)  # from the Monitor
    assert all(-50 <= value <= 0 for _, value in scalars["rollout/ep_rew_mean"])  # sparse: -1 a step, 50 steps
    # Nothing left to learn: a resume of a finished run measures nothing again.
    train("surgisim/NeedleReach-v0", resume=run, progress_bar=False)
    assert [int(row["timesteps"]) for row in eval_rows(run)] == [0, 200, 350]


def test_ctrl_c_saves_a_checkpoint_where_it_stopped_and_prints_the_resume_command(tmp_path):
    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump({"goal_task": {**KILLED, "checkpoint_freq": 1_000_000}}))  # only Ctrl-C saves
    run = tmp_path / "run"
    process = subprocess.Popen([*CLI, "train", "NeedleReach", "--run-dir", str(run), "--config", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 120
    while not (run / "eval.csv").exists() and time.time() < deadline:  # training has begun
        time.sleep(0.05)
    time.sleep(3.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert f"checkpoint saved; continue with: surgisim train NeedleReach --resume {run}" in stderr
    steps = assert_consistent(run)
    assert steps > KILLED["learning_starts"]
    train("surgisim/NeedleReach-v0", steps=steps + 20, resume=run, progress_bar=False)
    assert assert_consistent(run) == steps + 20
    assert_no_leftovers(run)


def test_a_run_with_its_own_tool_file_evaluates_and_records_from_anywhere(tmp_path, small_config, monkeypatch):
    shipped = files("surgisim.assets") / "tools" / "LARGE_NEEDLE_DRIVER_420006.json"
    (tmp_path / "mytool.json").write_text(shipped.read_text())
    monkeypatch.chdir(tmp_path)
    run = train("surgisim/NeedleReach-v0", steps=150, config_file=small_config, run_dir=tmp_path / "run",
                progress_bar=False, extra_env_kwargs={"tool": "mytool.json", "control": "joint"})  # fmt: skip
    settings = yaml.safe_load((run / "config.yaml").read_text())
    assert settings["env_kwargs"]["tool"] == str(tmp_path / "mytool.json")  # absolute: found from anywhere
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for command in (
        ["evaluate", "NeedleReach", "--policy", str(run), "--episodes", "1", "--json"],
        ["demos", "record", "NeedleReach", "--policy", str(run), "--episodes", "1", "--out", "demos"],
    ):
        result = subprocess.run([*CLI, *command], capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    dataset = load_demos(elsewhere / "demos")
    assert dataset.spec.env_spec.kwargs["tool"] == str(tmp_path / "mytool.json")  # recorded with the run's tool
    assert np.asarray(next(dataset.iterate_episodes()).actions).shape[1] == 7  # and its joint control
    result = subprocess.run([*CLI, "demos", "record", "NeedlePick", "--policy", str(run), "--episodes", "1",
                             "--out", "pick"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 2 and "trained on surgisim/NeedleReach-v0, not surgisim/NeedlePick-v0" in result.stderr


def test_env_arguments_train_the_run_and_stay_with_it(tmp_path, small_config):
    run = train("surgisim/NeedleReach-v0", steps=150, config_file=small_config, run_dir=tmp_path / "run",
                progress_bar=False, extra_env_kwargs={"control": "joint", "action_frame": "world"})  # fmt: skip
    assert yaml.safe_load((run / "config.yaml").read_text())["env_kwargs"] == {"control": "joint",
                                                                               "action_frame": "world"}  # fmt: skip
    assert load_model(run).action_space.shape == (7,)  # joint control: six joints and the jaw
    import torch

    assert torch.get_num_threads() == 1  # the default: one thread for the learner
    with pytest.raises(ValueError, match="started with env_kwargs"):
        train("surgisim/NeedleReach-v0", steps=200, resume=run, extra_env_kwargs={"control": "cartesian"})
    for kwargs, problem in (({"obs_mode": "rgb"}, "cannot be set for a run"), ({"control": "polar"}, "control=")):
        with pytest.raises(ValueError, match=problem):
            train("surgisim/NeedleReach-v0", run_dir=tmp_path / "bad", extra_env_kwargs=kwargs)
    assert not (tmp_path / "bad").exists()


def test_the_learner_takes_one_torch_thread_and_a_device_it_has():
    import torch

    from surgisim.agents.train import _device

    assert _device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            _device("cuda")
    result = subprocess.run([*CLI, "train", "NeedleReach", "--torch-threads", "0"], capture_output=True, text=True)
    assert result.returncode == 2 and "--torch-threads" in result.stderr


def test_rl_zoo3_trains_from_the_exported_config_and_its_run_evaluates_here(tmp_path):
    """The real rl_zoo3: it reads surgisim's hyperparameters as exported, trains, and surgisim
    evaluates (and checks) the run folder it writes."""
    result = subprocess.run([*CLI, "export-config", "sac", "--envs", "NeedleReach", "--out", "sac.yml"],
                            capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    entry = yaml.safe_load((tmp_path / "sac.yml").read_text())["surgisim/NeedleReach-v0"]
    assert entry["replay_buffer_class"] == "HerReplayBuffer" and "her" not in entry
    result = subprocess.run([sys.executable, "-m", "rl_zoo3.train", "--algo", "sac", "--env", "surgisim/NeedleReach-v0",
                             "--gym-packages", "surgisim.envs", "--conf-file", "sac.yml", "-n", "200", "--eval-freq",
                             "-1", "-f", "logs", "--seed", "3"], capture_output=True, text=True, cwd=tmp_path,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    config = (tmp_path / "logs/sac/surgisim-NeedleReach-v0_1/surgisim-NeedleReach-v0/config.yml").read_text()
    assert "HerReplayBuffer" in config and "net_arch=[256, 256]" in config  # rl_zoo3 took them
    run = tmp_path / "logs/sac/surgisim-NeedleReach-v0_1"
    policy = load_policy(run)
    assert policy.env_id == "surgisim/NeedleReach-v0" and policy.normalizer is not None
    metrics = evaluate("surgisim/NeedleReach-v0", str(run), episodes=2, seed=0)
    assert metrics["episodes"] == 2
    result = subprocess.run([*CLI, "evaluate", "NeedlePick", "--policy", str(run), "--episodes", "1"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2 and "was trained on surgisim/NeedleReach-v0" in result.stderr
    # Damaged copies of its settings: a one-line error naming the file, whatever the damage.
    args = run / "surgisim-NeedleReach-v0" / "args.yml"
    original = args.read_bytes()
    ordered = "!!python/object/apply:collections.OrderedDict"
    for damage in ("- a list\n- of things\n", f"{ordered} []\n", f"{ordered}\n- {{a: 1}}\n",
                   f"{ordered}\n- - [env, 5]\n  - [algo, sac]\n", "env: surgisim/NeedleReach-v0\nalgo: [sac]\n",
                   "!!python/object/apply:os.system ['true']\n", b"env: caf\xe9\n", "[" * 100_000):  # fmt: skip
        args.write_bytes(damage if isinstance(damage, bytes) else damage.encode())
        with pytest.raises(ValueError, match=re.escape(str(args))):
            load_policy(run)
    args.write_bytes(original)
    # export-config --force replaces only a file it wrote; never a user's own, never through a link.
    (tmp_path / "mine.yml").write_text("# my own notes\n")
    os.symlink(tmp_path / "sac.yml", tmp_path / "link.yml")
    for name in ("mine.yml", "link.yml"):
        result = subprocess.run([*CLI, "export-config", "sac", "--out", name, "--force"], capture_output=True,
                                text=True, cwd=tmp_path)  # fmt: skip
        assert result.returncode == 2 and "--force replaces only those" in result.stderr
    assert (tmp_path / "mine.yml").read_text() == "# my own notes\n" and (tmp_path / "link.yml").is_symlink()
    result = subprocess.run([*CLI, "export-config", "td3", "--out", "sac.yml", "--force"], capture_output=True,
                            text=True, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0 and "hyperparameters for td3" in (tmp_path / "sac.yml").read_text()
