import json
import math

import gymnasium as gym
import numpy as np
import pytest

import surgisim.envs
from surgisim.envs.documents import strip_comments
from surgisim.envs.tools import tools_folder

ENV_IDS = surgisim.envs.env_ids()


@pytest.fixture
def make_env():
    """Make envs with ``gym.make`` and close them after the test."""
    envs: list[gym.Env] = []

    def factory(env_id: str, **kwargs) -> gym.Env:
        env = gym.make(env_id, **kwargs)
        envs.append(env)
        return env

    yield factory
    for env in envs:
        env.close()


def rollout(env: gym.Env, seed: int, steps: int) -> list:
    """Observations, rewards, flags and infos of ``steps`` seeded random steps (resetting when done)."""
    env.action_space.seed(seed)
    observation, info = env.reset(seed=seed)
    trace = [(observation, info)]
    for _ in range(steps):
        step = env.step(env.action_space.sample())
        trace.append(step)
        if step[2] or step[3]:
            trace.append(env.reset())
    return trace


def assert_same(a, b, atol: float = 0.0) -> None:
    """Deep equality for nested tuples, dicts and arrays (floats within ``atol`` if given)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key], atol)
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y, atol)
    elif atol and np.issubdtype(np.asarray(a).dtype, np.floating):
        np.testing.assert_allclose(a, b, rtol=0.0, atol=atol)
    else:
        np.testing.assert_array_equal(a, b)


# The PSM's first three rows, as the dVRK's arm file gives them (alpha, A, theta offset, D, prismatic).
DVRK_ARM = [(1.5708, 0.0, 1.5708, 0.0, False), (-1.5708, 0.0, -1.5708, 0.0, False), (1.5708, 0.0, 0.0, -0.4318, True)]


def dvrk_tool_file(name: str) -> dict:
    """A shipped tool file's raw content, as the dVRK's JSON reader sees it."""
    return json.loads(strip_comments((tools_folder() / f"{name}.json").read_text()))


def dvrk_measured_cp(tool_json: dict, q: np.ndarray) -> np.ndarray:
    """measured_cp as the dVRK computes it: modified DH with the files' own numbers, then the
    tooltip offset (written here from the dVRK's conventions, not from surgisim's code)."""
    rows = list(DVRK_ARM) + [(j["alpha"], j["A"], j["theta"] + j["offset"], j["D"], False)
                             for j in tool_json["DH"]["joints"]]  # fmt: skip
    pose = np.eye(4)
    for (alpha, a, theta, d, prismatic), value in zip(rows, q, strict=True):
        theta, d = (theta, d + value) if prismatic else (theta + value, d)
        ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(theta), math.sin(theta)
        pose = pose @ np.array([[ct, -st, 0, a], [st * ca, ct * ca, -sa, -sa * d], [st * sa, ct * sa, ca, ca * d],
                                [0, 0, 0, 1]])  # fmt: skip
    key = "tooltip_offset" if "tooltip_offset" in tool_json else "tooltip-offset"
    return pose @ np.array(tool_json[key])


def alias_bomb(levels: int = 9) -> str:
    """A "billion laughs" YAML: a few hundred bytes whose aliases expand to 9**levels strings."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"
