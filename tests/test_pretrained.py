"""Shipped policies: they load with onnxruntime alone and reach their stated success."""

import json
import shlex
import subprocess
import sys

import pytest
import yaml

from surgisim.agents.cli import build_parser, cmd_train
from surgisim.agents.config import load_config
from surgisim.agents.evaluate import evaluate
from surgisim.agents.onnx_policy import OnnxPolicy
from surgisim.agents.pretrained import available, card, load_pretrained
from surgisim.agents.ship import ship
from surgisim.agents.train import train

SHIPPED = ["surgisim/NeedleReach-v0", "surgisim/NavigateAnatomy-v0", "surgisim/EndoscopeTrack-v0",
           "surgisim/NeedlePick-v0", "surgisim/NeedleHandover-v0", "surgisim/NeedleInsert-v0"]  # fmt: skip


@pytest.mark.parametrize("env_id", SHIPPED)
def test_policy_is_shipped_with_a_card(env_id):
    assert env_id in available()
    shipped = card(env_id)
    assert shipped["env_id"] == env_id and isinstance(shipped["seed"], int)
    # Its recipe is commands the CLI takes, training one run folder that the export reads.
    parsed = [build_parser().parse_args(shlex.split(line)[1:]) for line in shipped["reproduce"]]
    trained = [args for args in parsed if args.run is cmd_train]
    run = trained[0].run_dir
    assert trained and all(args.resume == run for args in trained[1:]) and parsed[-1].run_dir == run
    assert shipped["hyperparameters"]["n_timesteps"] == shipped["n_timesteps"]
    # The shipped config files still give the settings it was trained with.
    assert shipped["hyperparameters"] == load_config(shipped["algo"], env_id)


def test_ship_exports_a_run_with_a_card_whose_commands_made_it(tmp_path):
    run = train("surgisim/NeedleReach-v0", steps=100, run_dir=tmp_path / "run", progress_bar=False)
    train("surgisim/NeedleReach-v0", steps=150, resume=run, progress_bar=False)  # a resume is part of the recipe
    card_file = ship(run, episodes=2, folder=tmp_path)
    shipped = yaml.safe_load(card_file.read_text())
    measured = evaluate("surgisim/NeedleReach-v0", str(tmp_path / "NeedleReach-v0.onnx"), episodes=2, seed=0)
    assert shipped["evaluation_episodes"] == 2 and shipped["success_rate"] == measured["success_rate"]
    assert shipped["reproduce"] == [
        "surgisim train NeedleReach --algo sac --seed 0 --steps 100 --run-dir runs/NeedleReach-sac-seed0",
        "surgisim train NeedleReach --resume runs/NeedleReach-sac-seed0 --steps 150",
        "surgisim export runs/NeedleReach-sac-seed0 --format onnx --out NeedleReach-v0.onnx",
    ]
    OnnxPolicy(tmp_path / "NeedleReach-v0.onnx")


def test_ship_refuses_a_run_its_card_could_not_reproduce(tmp_path):
    config = tmp_path / "tiny.yaml"
    tiny = {"n_timesteps": 100, "learning_starts": 50, "batch_size": 16, "net_arch": [16], "eval_freq": 100,
            "eval_episodes": 1}  # fmt: skip
    config.write_text(yaml.safe_dump({"goal_task": tiny}))
    run = train("surgisim/NeedleReach-v0", run_dir=tmp_path / "run", progress_bar=False, config_file=config)
    with pytest.raises(ValueError, match=r"tiny.yaml, not configs/sac.yaml"):
        ship(run, episodes=2, folder=tmp_path / "shipped")
    (run / "command.txt").write_text("surgisim train NeedleReach --run-dir '/tmp/ru\n")  # cut short by a kill
    with pytest.raises(ValueError, match=r"command.txt: cannot read .*No closing quotation"):
        ship(run, episodes=2, folder=tmp_path / "shipped")
    (run / "command.txt").write_text("/usr/bin/python train.py\n")  # an older surgisim kept argv
    with pytest.raises(ValueError, match="not a surgisim train command"):
        ship(run, episodes=2, folder=tmp_path / "shipped")
    assert not (tmp_path / "shipped").exists()


@pytest.mark.parametrize("env_id", available())
def test_shipped_policy_reaches_its_stated_success(env_id):
    metrics = evaluate(env_id, "pretrained", episodes=30, seed=0)
    assert metrics["success_rate"] >= card(env_id)["success_rate"] - 0.05


def test_shipped_policy_runs_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['stable_baselines3'] = None\n"
        "from surgisim.agents.evaluate import evaluate\n"
        "print(json.dumps(evaluate('surgisim/NeedleReach-v0', 'pretrained', episodes=3)))"
    )
    result = subprocess.run([sys.executable, "-c", f"import json; {code}"], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The same episodes as with everything installed: onnxruntime alone ran the policy.
    assert json.loads(result.stdout.strip().splitlines()[-1]) == evaluate("surgisim/NeedleReach-v0", "pretrained", 3)


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


@pytest.mark.parametrize("env_id", available(vision=True))
def test_shipped_vision_policy_sees_what_a_robot_has_and_reaches_its_stated_success(env_id):
    shipped = card(env_id, vision=True)
    policy = load_pretrained(env_id, vision=True)
    assert policy.env_kwargs["obs_mode"] == "robot" and "state" in policy.observation_shapes
    metrics = evaluate(env_id, "vision", episodes=30, seed=5000)
    assert metrics["success_rate"] >= shipped["success_rate"] - 0.1
    errors = evaluate(env_id, "vision", episodes=30, seed=5000, env_kwargs={"randomize": "kinematics"})
    assert errors["success_rate"] >= shipped["success_rate_kinematic_errors"] - 0.1
