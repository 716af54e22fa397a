"""Results over seeds (IQM and bootstrap intervals) and sweeps on a real local Ray."""

import csv
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from scipy.stats import trim_mean

from surgisim.agents import sweep as sweep_module
from surgisim.agents.cli import build_parser
from surgisim.agents.config import load_config
from surgisim.agents.stats import bootstrap_ci, iqm
from surgisim.agents.sweep import parse_grid

CLI = [sys.executable, "-m", "surgisim.agents.cli"]
TINY = {"n_timesteps": 150, "her": True, "n_sampled_goal": 4, "goal_selection_strategy": "future",
        "learning_rate": 0.001, "buffer_size": 5000, "batch_size": 32, "gamma": 0.95, "tau": 0.05,
        "learning_starts": 100, "train_freq": 1, "gradient_steps": 1, "net_arch": [32, 32], "eval_freq": 100,
        "eval_episodes": 2, "checkpoint_freq": 100}  # fmt: skip


def test_the_interquartile_mean_is_rliables():
    rng = np.random.default_rng(0)
    for count in range(1, 40):
        values = rng.normal(size=count)
        assert iqm(values) == pytest.approx(trim_mean(values, 0.25), abs=1e-12)  # rliable's definition
    assert iqm([0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 100.0]) == 1.0  # the outliers at either end do not count


def test_the_bootstrap_interval_is_seeded_and_holds_the_estimate():
    assert bootstrap_ci([0.8] * 5) == pytest.approx((0.8, 0.8))
    values = np.random.default_rng(1).uniform(0.6, 1.0, 10)
    low, high = bootstrap_ci(values)
    assert low <= iqm(values) <= high and high - low > 0.01
    assert bootstrap_ci(values) == (low, high)
    wider = bootstrap_ci(values, confidence=0.99)
    assert wider[0] <= low and wider[1] >= high


def _sweep(*arguments, cwd):
    return subprocess.run([*CLI, "sweep", "NeedleReach", *map(str, arguments)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)  # fmt: skip


def _interrupted_sweep(out, *arguments, cwd):
    """A sweep stopped with Ctrl-C (SIGINT to its process group, as a terminal sends it) once its
    first run has started."""
    process = subprocess.Popen([*CLI, "sweep", "NeedleReach", *map(str, arguments), "--out", str(out)],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(out.glob("*/checkpoint.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def test_a_sweep_on_a_local_ray_trains_ordinary_runs_summarises_them_and_resumes(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"goal_task": TINY}))
    out = tmp_path / "sweep"
    grid = ["--seeds", 2, "--grid", "learning_rate=1e-3,3e-4", "--config", config]
    returncode, stderr = _interrupted_sweep(out, *grid, cwd=tmp_path)
    assert returncode == 130 and f"surgisim sweep NeedleReach --resume {out}" in stderr, stderr[-3000:]
    assert not (out / "summary.csv").exists()  # nothing that looks final
    for asked in (["--seeds", 3], ["--steps", 1000], ["--algo", "td3"], ["--grid", "learning_rate=0.01"],
                  ["--config", config], ["--out", tmp_path / "elsewhere"]):  # fmt: skip
        refused = _sweep("--resume", out, *asked, cwd=tmp_path)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
        assert "resumes" in refused.stderr.splitlines()[-1]
    result = _sweep("--resume", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(path.name for path in out.iterdir() if path.name.startswith("NeedleReach"))
    assert runs == [f"NeedleReach-sac-learning_rate{lr}-seed{seed}" for lr in ("0.0003", "0.001") for seed in (0, 1)]
    for run in runs:  # each an ordinary run folder, trained with its grid point and seed
        settings = yaml.safe_load((out / run / "config.yaml").read_text())
        assert settings["seed"] == int(run[-1]) and str(settings["hyperparameters"]["learning_rate"]) in run
        assert [row["timesteps"] for row in csv.DictReader((out / run / "eval.csv").open())] == ["0", "100", "150"]
        # Its command.txt says how to train it alone (not the Ray worker's command line).
        command = (out / run / "command.txt").read_text().splitlines()[0]
        arguments = build_parser().parse_args(shlex.split(command)[1:])
        assert (arguments.env_id, arguments.seed, arguments.run_dir) == ("surgisim/NeedleReach-v0", int(run[-1]),
                                                                         (out / run).resolve())  # fmt: skip
        assert load_config("sac", arguments.env_id, arguments.config) == settings["hyperparameters"]
    with (out / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["point"] for row in rows] == ["learning_rate0.001", "learning_rate0.0003"]
    assert all(row["seeds"] == "2" and 0.0 <= float(row["final_success_iqm"]) <= 1.0 for row in rows)
    assert (out / "curves.png").stat().st_size > 0 and "success IQM" in result.stdout
    # A run lost: --resume trains it again and counts the others as they are.
    kept = (out / runs[0] / "eval.csv").read_bytes()
    shutil.rmtree(out / runs[3])
    result = _sweep("--resume", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / runs[3] / "checkpoint.json").exists() and (out / runs[0] / "eval.csv").read_bytes() == kept
    # A sweep folder is never reused; a bad grid or a trial no machine can take is refused before
    # anything is written.
    assert _sweep("--seeds", 1, "--config", config, "--out", out, cwd=tmp_path).returncode == 2
    for bad in (["--grid", "learning_rate=2"], ["--cpus-per-trial", 64]):
        result = _sweep("--seeds", 1, *bad, "--config", config, "--out", tmp_path / "bad", cwd=tmp_path)
        assert result.returncode == 2 and not (tmp_path / "bad").exists(), result.stderr
    assert "the largest machine of the Ray cluster has" in result.stderr
    # A damaged record or a run folder that is a link: one line, nothing changed.
    record = yaml.safe_load((out / "sweep.yaml").read_text())
    (out / "sweep.yaml").write_text(yaml.safe_dump({**record, "seeds": "many"}))
    result = _sweep("--resume", out, cwd=tmp_path)
    assert result.returncode == 2 and "seeds is missing or not valid" in result.stderr.splitlines()[-1]
    (out / "sweep.yaml").write_text(yaml.safe_dump(record))
    shutil.move(out / runs[0], tmp_path / runs[0])
    os.symlink(tmp_path / runs[0], out / runs[0])
    result = _sweep("--resume", out, cwd=tmp_path)
    assert result.returncode == 2 and "a symbolic link in a sweep folder" in result.stderr.splitlines()[-1]


def test_grid_values_read_as_yaml_each_once():
    assert parse_grid(["learning_rate=1e-3,3e-4", "net_arch=[64,64],[256, 256]"]) == {
        "learning_rate": [0.001, 0.0003], "net_arch": [[64, 64], [256, 256]]}  # fmt: skip
    for items, message in ((["batch_size=64,64"], "64 is given twice"),
                           (["gamma=0.9", "gamma=0.95"], "gamma is given twice"),
                           (["net_arch=[64,64"], "not valid list of values"),
                           (["batch_size=1,,2"], "not valid list of values"),
                           (["batch_size"], "give KEY=VALUE")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_grid(items)


def test_a_cluster_that_does_not_answer_is_an_error_within_the_timeout(tmp_path, monkeypatch):
    listening = socket.socket()  # a port that accepts connections and never speaks Ray
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    monkeypatch.setattr(sweep_module, "CONNECT_TIMEOUT_S", 8.0)
    try:
        for address in (f"127.0.0.1:{listening.getsockname()[1]}", "127.0.0.1:1"):
            started = time.monotonic()
            with pytest.raises(ValueError, match=f"cannot reach a Ray cluster at {address}"):
                sweep_module.sweep("surgisim/NeedleReach-v0", tmp_path / "sweep", address=address)
            assert time.monotonic() - started < 30 and not (tmp_path / "sweep").exists()
    finally:
        listening.close()
