"""The ``surgisim`` command as a user runs it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib.resources import files

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import ENV_IDS
from surgisim.envs.files import video_writer


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    # As a user's shell runs it: C stdio buffered (PYTHONUNBUFFERED would hide late C prints on stdout).
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-m", "surgisim.agents.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300,
        env=env,
    )  # fmt: skip


def test_envs_lists_every_id_with_a_description():
    result = run("envs")
    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ENV_IDS
    assert all(len(line.split()) > 3 for line in lines)


def test_evaluate_json_is_one_object_on_stdout():
    result = run(
        "evaluate", "surgisim/NeedleReach-v0", "--policy", "expert", "--episodes", "5", "--seed", "0", "--json"
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["episodes"] == 5 and metrics["success_rate"] == 1.0
    assert 1 <= metrics["mean_episode_length"] <= 50


def test_evaluate_under_randomisation_and_a_bad_group_or_config(tmp_path):
    plain = run("evaluate", "NeedleReach", "--policy", "pretrained", "--episodes", "3", "--json")
    varied = run("evaluate", "NeedleReach", "--policy", "pretrained", "--episodes", "3", "--json",
                 "--randomize", "kinematics,observation")  # fmt: skip
    assert plain.returncode == varied.returncode == 0, varied.stderr
    assert json.loads(plain.stdout)["mean_final_distance_mm"] != json.loads(varied.stdout)["mean_final_distance_mm"]
    result = run("evaluate", "NeedleReach", "--episodes", "1", "--randomize", "lighting")
    assert result.returncode != 0 and "'lighting' is not a randomisation group" in result.stderr
    (tmp_path / "ranges.yaml").write_text("kinematics:\n  rcm_shift_mm: [3, 1]\n")
    result = run("demo", "NeedleReach", "--episodes", "1", "--randomize", "all", "--randomize-config",
                 str(tmp_path / "ranges.yaml"), "--out", str(tmp_path / "d.mp4"))  # fmt: skip
    assert result.returncode != 0 and "kinematics.rcm_shift_mm: [3, 1] is a negative range" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "d.mp4").exists()


def test_any_policy_can_be_filmed_by_evaluate_and_demo(tmp_path):
    result = run("evaluate", "NeedleReach", "--policy", "pretrained", "--episodes", "2", "--json", "--video",
                 str(tmp_path / "eval.mp4"), "--video-size", "48")  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)  # stdout stays one JSON object; the video's path goes to stderr
    frames = iio.imread(tmp_path / "eval.mp4")
    # Each episode's first frame and one per step.
    assert frames.shape == (2 + round(2 * metrics["mean_episode_length"]), 48, 48, 3)
    result = run("demo", "NeedleReach", "--policy", "expert", "--episodes", "1", "--out", str(tmp_path / "d.mp4"),
                 "--video-size", "48")  # fmt: skip
    assert result.returncode == 0 and "policy=expert" in result.stdout, result.stderr


def test_demo_writes_video_and_keeps_existing_files(tmp_path):
    existing = tmp_path / "demo.mp4"
    existing.write_bytes(b"keep me")
    result = run("demo", "EndoscopeTrack", "--episodes", "1", "--out", str(existing), "--video-size", "64")
    assert result.returncode == 0, result.stderr
    assert existing.read_bytes() == b"keep me"
    written = tmp_path / "demo-1.mp4"
    assert str(written) in result.stdout and "success_rate" in result.stdout
    frames = iio.imread(written)
    assert frames.shape[0] == 101 and frames.shape[1:] == (64, 64, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "NeedleTie"], "unknown environment"),
        (["evaluate", "NeedleReach", "--episodes", "0"], "at least 1"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args, message):
    result = run(*args)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize(
    "args",
    [["evaluate", "NeedleReach"], ["demo"], ["demos", "record", "NeedleReach"], ["train", "NeedleReach"],
     ["ros", "twin"]],
)  # fmt: skip
def test_a_negative_seed_is_refused(args):
    result = run(*args, "--seed", "-1")
    assert result.returncode == 2 and "a seed is an integer from 0, got -1" in result.stderr


@pytest.mark.parametrize(
    ("out", "message"),
    [("video", "must end in .mp4"), ("video.avi", "must end in .mp4"), ("notes.txt/demo.mp4", "is a file"),
     ("/proc/surgisim-demo.mp4", "does not take new files")],
)  # fmt: skip
def test_demo_refuses_an_out_it_cannot_write_before_running(tmp_path, out, message):
    (tmp_path / "notes.txt").write_text("keep")
    (tmp_path / "video").mkdir()
    result = run("demo", "SutureThrow", "--episodes", "50", "--out", out, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "video"] and not os.listdir(tmp_path / "video")


def test_export_replaces_only_a_policy_that_surgisim_exported(tmp_path):
    (tmp_path / "folder.onnx").mkdir()
    (tmp_path / "theirs.onnx").write_bytes(b"someone else's model")
    shipped = tmp_path / "shipped.onnx"
    shutil.copy(files("surgisim.assets") / "policies" / "NeedleReach-v0.onnx", shipped)
    for out, message in (("folder.onnx", "not a policy that surgisim exported"),
                         ("theirs.onnx", "not a policy that surgisim exported"),
                         ("policy", "must end in .onnx")):  # fmt: skip
        result = run("export", "no-such-run", "--out", out, "--force", cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    assert (tmp_path / "theirs.onnx").read_bytes() == b"someone else's model"
    result = run("export", "no-such-run", "--out", "shipped.onnx", "--force", cwd=tmp_path)
    assert result.returncode == 2 and "no-such-run" in result.stderr  # recognised; the run is what is missing
    assert sorted(os.listdir(tmp_path)) == ["folder.onnx", "shipped.onnx", "theirs.onnx"]


def test_a_video_is_streamed_to_disk_and_appears_only_when_complete(tmp_path):
    path = tmp_path / "stream.mp4"
    rng = np.random.default_rng(0)
    frame = np.zeros((64, 64, 3), dtype=np.uint8)
    sizes = []
    with video_writer(path, fps=10) as append:
        for index in range(200):
            append(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))  # noise: frames that do not compress
            if index % 50 == 49:
                (staging,) = tmp_path.iterdir()  # written aside, beside the destination
                sizes.append(staging.stat().st_size)
        assert not path.exists()
    assert sizes == sorted(sizes) and sizes[0] > 0 and sizes[-1] > sizes[0]  # frames reach the disk as they come
    assert iio.imread(path).shape == (200, 64, 64, 3)
    with pytest.raises(RuntimeError), video_writer(tmp_path / "failed.mp4", fps=10) as append:
        append(frame)
        raise RuntimeError("the episode failed")
    assert os.listdir(tmp_path) == ["stream.mp4"]


def test_ctrl_c_ends_a_command_with_one_line():
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    process = subprocess.Popen([sys.executable, "-m", "surgisim.agents.cli", "evaluate", "SutureThrow",
                                "--episodes", "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)  # fmt: skip
    time.sleep(4.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip().endswith("surgisim: interrupted") and "Traceback" not in err


def test_ctrl_c_keeps_the_video_so_far():
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    with tempfile.TemporaryDirectory() as folder:
        video = os.path.join(folder, "episodes.mp4")
        process = subprocess.Popen([sys.executable, "-m", "surgisim.agents.cli", "evaluate", "SutureThrow",
                                    "--episodes", "1000", "--video", video, "--video-size", "64"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
        # Interrupt once the encoder is writing (the video goes to a file beside it until it ends),
        # however long a loaded machine takes to get there.
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and not any(entry.stat().st_size for entry in os.scandir(folder)):
            time.sleep(0.2)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130 and err.strip().endswith(f"the video so far: {video}"), err[-2000:]
        frames = iio.imread(video)
        assert frames.shape[0] > 1 and frames.shape[1:] == (64, 64, 3)
        assert os.listdir(folder) == ["episodes.mp4"]  # nothing else left beside it
