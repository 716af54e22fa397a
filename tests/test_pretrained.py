"""Shipped policies: they load with onnxruntime alone and reach their stated success."""

import subprocess
import sys

import pytest

from surgisim.agents.evaluate import evaluate
from surgisim.agents.pretrained import available, card, load_pretrained


def test_needle_reach_ships_a_policy_with_a_card():
    assert "surgisim/NeedleReach-v0" in available()
    shipped = card("surgisim/NeedleReach-v0")
    assert shipped["env_id"] == "surgisim/NeedleReach-v0" and shipped["seed"] == 0
    assert any("surgisim train" in line for line in shipped["reproduce"])


@pytest.mark.parametrize("env_id", available())
def test_shipped_policy_reaches_its_stated_success(env_id):
    metrics = evaluate(env_id, "pretrained", episodes=30, seed=0)
    assert metrics["success_rate"] >= card(env_id)["success_rate"] - 0.05


def test_shipped_policy_runs_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['stable_baselines3'] = None\n"
        "from surgisim.agents.evaluate import evaluate\n"
        "print(evaluate('surgisim/NeedleReach-v0', 'pretrained', episodes=3)['success_rate'])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip().splitlines()[-1]) >= 0.0


def test_no_pretrained_policy_is_a_clear_error():
    with pytest.raises(ValueError, match="no pretrained policy for surgisim/SutureThrow-v0"):
        load_pretrained("surgisim/SutureThrow-v0")


def test_demo_uses_the_shipped_policy(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "surgisim.agents.cli", "demo", "NeedleReach", "--episodes", "1",
         "--out", str(tmp_path / "demo.mp4"), "--video-size", "64"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "policy=pretrained" in result.stdout
