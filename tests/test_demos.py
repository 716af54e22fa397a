"""Demonstration datasets: recorded in Minari format, loadable, never overwritten or left half-written."""

import os
import signal
import subprocess
import sys
import time

import minari
import numpy as np
import pytest

from surgisim.agents.demos import dataset_id, load_demos, record_demos


def test_record_and_load_round_trip(tmp_path):
    path = record_demos("surgisim/NeedlePick-v0", tmp_path / "pick", episodes=3, seed=5, obs_mode="rgb")
    dataset = load_demos(path)
    assert dataset.total_episodes == 3
    episodes = list(dataset.iterate_episodes())
    assert dataset.total_steps == sum(len(episode.actions) for episode in episodes)
    for episode in episodes:
        steps = len(episode.actions)
        assert episode.observations["rgb"].shape == (steps + 1, 84, 84, 3)
        assert episode.observations["rgb"].dtype == np.uint8
        assert episode.observations["observation"].shape == (steps + 1, 20)
        assert episode.actions.shape == (steps, 5) and episode.rewards.shape == (steps,)
        assert episode.terminations[-1] and episode.infos["is_success"][-1]  # the expert succeeded
        assert set(episode.infos) >= {"is_success", "distance_mm", "cost", "held", "damage_mm"}
    assert dataset.spec.env_spec.kwargs["obs_mode"] == "rgb"
    env = dataset.recover_environment()
    observation, _ = env.reset(seed=5)
    np.testing.assert_array_equal(observation["desired_goal"], episodes[0].observations["desired_goal"][0])
    env.close()


def test_an_image_recording_writes_each_episode_before_the_next(tmp_path, monkeypatch):
    """Episodes stream into the file (memory holds one): when episode k is rolled out, k episodes
    are on disk. Here what a robot has, under randomisation, by the expert (which reads the
    simulator)."""
    import h5py

    from surgisim.agents import demos

    on_disk, rollout = [], demos._rollout

    def counted(env, actor, index, seed):
        if index:
            with h5py.File(next(tmp_path.glob("**/main_data.hdf5")), "r") as file:
                on_disk.append(len(file.keys()))
        return rollout(env, actor, index, seed)

    monkeypatch.setattr(demos, "_rollout", counted)
    path = record_demos("surgisim/NeedleReach-v0", tmp_path / "reach", episodes=3, obs_mode="robot",
                        env_kwargs={"image_size": 48, "randomize": "appearance,kinematics"})  # fmt: skip
    assert on_disk == [1, 2]
    dataset = load_demos(path)
    episode = next(dataset.iterate_episodes())
    assert set(episode.observations) == {"rgb", "state", "goal"}
    assert episode.observations["rgb"].shape[1:] == (48, 48, 3) and episode.infos["is_success"][-1]
    assert dataset.spec.env_spec.kwargs["randomize"] == "appearance,kinematics"


def test_load_dataset_by_id_from_the_minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    record_demos("surgisim/NeedleReach-v0", episodes=2)
    dataset = minari.load_dataset(dataset_id("surgisim/NeedleReach-v0", "expert"))
    assert dataset.total_episodes == 2


def test_existing_dataset_is_kept_unless_forced(tmp_path):
    path = record_demos("surgisim/NeedleReach-v0", tmp_path / "reach", episodes=2)
    before = sorted(p.read_bytes() for p in path.rglob("*") if p.is_file())
    with pytest.raises(FileExistsError, match="--force"):
        record_demos("surgisim/NeedleReach-v0", path, episodes=3)
    assert sorted(p.read_bytes() for p in path.rglob("*") if p.is_file()) == before
    record_demos("surgisim/NeedleReach-v0", path, episodes=3, force=True)
    assert load_demos(path).total_episodes == 3
    assert sorted(os.listdir(tmp_path)) == ["reach"]  # no staging or backup left behind


def test_interrupted_recording_leaves_nothing(tmp_path):
    out = tmp_path / "insert"
    command = [sys.executable, "-m", "surgisim.agents.cli", "demos", "record", "NeedleInsert", "--episodes", "100000",
               "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(4.0)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    assert process.returncode != 0
    assert not out.exists() and os.listdir(tmp_path) == []


def test_cli_refuses_to_overwrite(tmp_path):
    out = tmp_path / "reach"
    args = [sys.executable, "-m", "surgisim.agents.cli", "demos", "record", "NeedleReach", "--episodes", "2"]
    first = subprocess.run([*args, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0 and str(out) in first.stdout
    second = subprocess.run([*args, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert second.returncode == 2 and "--force" in second.stderr


RECORD = [sys.executable, "-m", "surgisim.agents.cli", "demos", "record"]


def test_force_replaces_only_a_dataset_that_surgisim_recorded(tmp_path):
    folder = tmp_path / "x" / "u"
    folder.mkdir(parents=True)
    (folder / "thesis.tex").write_text("keep")
    afile = tmp_path / "notes.txt"
    afile.write_text("keep too")
    foreign = record_demos("surgisim/NeedleReach-v0", tmp_path / "theirs", episodes=1)
    (foreign / "data" / "their_notes.txt").write_text("and this")  # a dataset someone added to
    for target in (folder, afile, foreign):
        before = sorted(os.listdir(tmp_path))
        result = subprocess.run([*RECORD, "NeedleReach", "--episodes", "1", "--out", str(target), "--force"],
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 2 and "not a dataset that surgisim recorded" in result.stderr
        assert sorted(os.listdir(tmp_path)) == before  # no staging or parked copy left behind
    assert (folder / "thesis.tex").read_text() == "keep" and afile.read_text() == "keep too"
    assert (foreign / "data" / "their_notes.txt").exists() and load_demos(foreign).total_episodes == 1


def test_a_relative_out_is_written_where_it_says(tmp_path):
    result = subprocess.run([*RECORD, "NeedlePick", "--episodes", "2", "--out", "demos/NeedlePick-expert"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert load_demos(tmp_path / "demos" / "NeedlePick-expert").total_episodes == 2
    assert os.listdir(tmp_path / "demos") == ["NeedlePick-expert"]


def test_what_a_killed_recording_left_is_removed_by_the_next(tmp_path):
    out = tmp_path / "reach"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".reach.surgisim-{dead.pid}-k1ll3d"  # as a SIGKILLed recording leaves it
    (stale / "surgisim").mkdir(parents=True)
    live = tmp_path / f".reach.surgisim-{os.getpid()}-w0rk1n"  # a recording still in progress
    live.mkdir()
    record_demos("surgisim/NeedleReach-v0", out, episodes=1)
    assert sorted(os.listdir(tmp_path)) == sorted(["reach", live.name])


@pytest.mark.parametrize("out", ["notes.txt/reach", "/proc/surgisim-reach"])
def test_an_out_that_cannot_be_written_is_refused_before_recording(tmp_path, out):
    (tmp_path / "notes.txt").write_text("keep")
    result = subprocess.run([*RECORD, "SutureThrow", "--episodes", "100", "--out", out], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "cannot write the dataset" in result.stderr
    assert "Traceback" not in result.stderr and os.listdir(tmp_path) == ["notes.txt"]
