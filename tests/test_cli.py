"""The ``surgisim`` command as a user runs it."""

import json
import os
import subprocess
import sys

import imageio.v3 as iio
import pytest

from conftest import ENV_IDS


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
