"""Hostile and malformed files: every YAML and JSON input is read strictly, within limits, with a short error.

The hostile files are the classic ones: a "billion laughs" alias bomb (a few hundred bytes that
expand to billions of values), deeply nested brackets, a FIFO where a file should be, an oversized
file. Each entry point is tried through the command a user would type, and must answer with one
short line (exit status 2) within seconds.
"""

import json
import os
import subprocess
import sys
import threading

import gymnasium as gym
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import alias_bomb, dvrk_tool_file
from surgisim.envs.documents import MAX_BYTES, DocumentError, excerpt, parse_json, read_json, read_yaml
from surgisim.envs.randomization import KEYS, MAX_TEXTURES, load_ranges
from surgisim.envs.tools import load_tool

CLI = [sys.executable, "-m", "surgisim.agents.cli"]


def hostile_files(folder, suffix=".yaml"):
    """name -> path of each hostile file, made in ``folder`` with ``suffix``."""
    files = {name: folder / f"{name}{suffix}" for name in ("bomb", "nested", "fifo", "huge")}
    files["bomb"].write_text(alias_bomb())
    files["nested"].write_text("[" * 400_000)
    os.mkfifo(files["fifo"])
    files["huge"].write_text("[" + "1, " * (MAX_BYTES // 3) + "1]\n")
    return files


def within(seconds, call):
    """``call()``'s exception (or None), failing the test if it takes longer than ``seconds``."""
    outcome = []

    def run():
        try:
            call()
            outcome.append(None)
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still running after {seconds} s"
    return outcome[0]


def test_the_alias_bomb_is_small_and_would_be_huge():
    text = alias_bomb()
    assert len(text) < 600
    assert yaml.compose(text) is not None  # PyYAML itself composes it: the expansion is what costs


@pytest.mark.parametrize("name", ["bomb", "nested", "fifo", "huge"])
def test_hostile_files_are_refused_at_once_with_a_short_error(tmp_path, name):
    path = hostile_files(tmp_path)[name]
    error = within(10, lambda: read_yaml(path, "config"))
    assert isinstance(error, DocumentError) and str(path) in str(error)
    assert len(str(error)) < 300, str(error)
    expected = {"bomb": "over 100000 values once its aliases are expanded", "nested": "nests over 64 levels",
                "fifo": "must be a regular file", "huge": "over 1024 KiB"}[name]  # fmt: skip
    assert expected in str(error)


def test_json_is_read_with_the_same_limits_and_no_key_twice(tmp_path):
    with pytest.raises(DocumentError, match="nests over 64 levels"):
        parse_json("[" * 400_000 + "]" * 400_000, "deep.json")
    with pytest.raises(DocumentError, match="nests over 64 levels"):
        parse_json("[" * 70 + "]" * 70, "deep.json")
    with pytest.raises(DocumentError, match="key 'D' appears twice"):
        parse_json('{"D": 0.4162, "D": 1e9}', "tool.json")
    (tmp_path / "latin1.json").write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(DocumentError, match="not UTF-8 text"):
        read_json(tmp_path / "latin1.json")


def test_yaml_reads_numbers_as_yaml_1_2_and_refuses_a_key_twice_and_python_tags(tmp_path):
    path = tmp_path / "doc.yaml"
    path.write_text("a: 1e-3\nb: [2e0, 3E+2]\n")
    assert read_yaml(path) == {"a": 0.001, "b": [2.0, 300.0]}
    path.write_text("a: 1\nb: 2\na: 3\n")
    with pytest.raises(DocumentError, match="line 3: key 'a' appears twice"):
        read_yaml(path)
    path.write_text("{a: 1, a: 2}\n")  # on one line too
    with pytest.raises(DocumentError, match="key 'a' appears twice"):
        read_yaml(path)
    path.write_text("a: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(DocumentError, match="could not determine a constructor"):
        read_yaml(path)


def test_an_excerpt_is_short_whatever_the_value():
    assert excerpt([list(range(1000))] * 1000).startswith("[[0, 1, 2")
    assert len(excerpt("x" * 10**6)) <= 80 and len(excerpt({i: [i] * 100 for i in range(1000)})) <= 80


@pytest.mark.parametrize(
    ("command", "suffix"),
    [
        (["evaluate", "NeedleReach", "--episodes", "1", "--randomize", "all", "--randomize-config", "{path}"], ".yaml"),
        (["train", "NeedleReach", "--config", "{path}", "--run-dir", "{folder}/run"], ".yaml"),
        (["train", "NeedleReach", "--env-kwargs", "tool={path}", "--run-dir", "{folder}/run"], ".json"),
        (["ros", "run", "--limits", "{path}", "--transport", "dds"], ".yaml"),
    ],
    ids=["randomize-config", "config", "tool", "limits"],
)
def test_each_entry_point_answers_hostile_files_with_one_line(tmp_path, command, suffix):
    for name, path in hostile_files(tmp_path, suffix).items():
        words = [word.format(path=path, folder=tmp_path) for word in command]
        result = subprocess.run([*CLI, *words], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        lines = [line for line in result.stderr.splitlines() if line.startswith("surgisim")]
        assert result.returncode == 2 and len(lines) == 1, (name, result.stderr[-2000:])
        assert len(lines[0]) < 400 and "Traceback" not in result.stderr, (name, lines[0])
        assert not (tmp_path / "run").exists()


# -- fuzzing: every file that is accepted gives a working simulation ----------------------------

RANGE_KEYS = [(group, key) for group, keys in KEYS.items() for key in keys]


@st.composite
def randomisation_files(draw):
    document = {}
    for group, key in draw(st.lists(st.sampled_from(RANGE_KEYS), min_size=1, max_size=8, unique=True)):
        integer, lowest, highest = KEYS[group][key]
        span = highest - lowest
        # Mostly within the bounds, sometimes beyond them (those files must be refused).
        values = st.floats(lowest - 0.2 * span, highest + 0.2 * span, allow_nan=False)
        low, high = sorted([draw(values), draw(values)])
        if integer:
            low, high = float(np.floor(low)), float(np.floor(low) + draw(st.integers(0, MAX_TEXTURES + 2)))
        document.setdefault(group, {})[key] = [low, high]
    return document


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=randomisation_files(), seed=st.integers(0, 2**16))
def test_every_accepted_randomisation_file_gives_finite_observations(tmp_path, document, seed):
    path = tmp_path / "ranges.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        ranges = load_ranges(path)
    except ValueError as error:
        assert str(path) in str(error) and len(str(error)) < 400
        beyond = any(
            not KEYS[group][key][1] <= low <= high <= KEYS[group][key][2]
            or (KEYS[group][key][0] and high - low + 1 > MAX_TEXTURES)
            for group, entries in document.items()
            for key, (low, high) in entries.items()
        )
        assert beyond, f"refused a file within the bounds: {error}"
        return
    for group, entries in ranges.items():
        for key, (low, high) in entries.items():
            assert KEYS[group][key][1] <= low <= high <= KEYS[group][key][2]
    env = gym.make("surgisim/NeedleReach-v0", obs_mode="rgbd", image_size=32, randomize="all",
                   randomize_config=str(path))  # fmt: skip
    try:
        observation, _ = env.reset(seed=seed)
        for _ in range(3):
            observation, *_ = env.step(env.action_space.sample())
            assert np.all(np.isfinite(observation["observation"])) and np.abs(observation["observation"]).max() < 10
            assert observation["rgb"].shape == (32, 32, 3)
    finally:
        env.close()


TOOL_FIELDS = {  # what to vary in a tool file, and over what (values beyond the bounds included)
    "shaft D": (lambda data, v: data["DH"]["joints"][0].__setitem__("D", v), st.floats(-0.5, 1e9)),
    "wrist A": (lambda data, v: data["DH"]["joints"][2].__setitem__("A", v), st.floats(-0.01, 0.05)),
    "roll qmax": (lambda data, v: data["DH"]["joints"][0].__setitem__("qmax", v), st.floats(0.1, 10.0)),
    "jaw qmax": (lambda data, v: data["jaw"].__setitem__("qmax", v), st.floats(0.1, 4.0)),
    "tooltip x": (lambda data, v: data["tooltip-offset"][0].__setitem__(3, v), st.floats(-1e9, 1e9)),
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(sorted(TOOL_FIELDS)), st.just(None), min_size=1), data=st.data())
def test_every_accepted_tool_file_gives_finite_observations(tmp_path, changes, data):
    tool = dvrk_tool_file("LARGE_NEEDLE_DRIVER_400006")
    for name in changes:
        change, values = TOOL_FIELDS[name]
        change(tool, data.draw(values, label=name))
    path = tmp_path / f"fuzz-{abs(hash(json.dumps(tool)))}.json"
    path.write_text(json.dumps(tool))
    try:
        load_tool(str(path))
    except ValueError as error:
        assert str(path) in str(error) and len(str(error)) < 400
        return
    joints = tool["DH"]["joints"]
    assert 0.35 <= joints[0]["D"] <= 0.55 and 0 <= joints[2]["A"] <= 0.02
    assert np.linalg.norm(np.array(tool["tooltip-offset"])[:3, 3]) <= 0.05
    env = gym.make("surgisim/NeedleReach-v0", tool=str(path))
    try:
        env.reset(seed=0)
        for _ in range(3):
            observation, *_ = env.step(env.action_space.sample())
            assert np.all(np.isfinite(observation["observation"])) and np.abs(observation["observation"]).max() < 10
    finally:
        env.close()
