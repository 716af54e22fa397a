"""Each task is solvable: its scripted expert succeeds in at least 99 of 100 seeded episodes."""

import pytest

from conftest import ENV_IDS
from surgisim.agents.evaluate import evaluate


@pytest.mark.expensive
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_expert_success_over_100_seeded_episodes(env_id):
    metrics = evaluate(env_id, "expert", episodes=100, seed=0)
    assert metrics["success_rate"] >= 0.99
    assert metrics["cost_rate"] == 0.0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_expert_works_under_joint_control(env_id):
    metrics = evaluate(env_id, "expert", episodes=20, seed=100, env_kwargs={"control": "joint"})
    assert metrics["success_rate"] >= 0.95
