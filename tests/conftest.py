import gymnasium as gym
import numpy as np
import pytest

import surgisim.envs

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
