"""DAgger and its augmentation against a toy problem whose answer is known."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from surgisim.agents.dagger import Dataset, Schedule, dagger, random_shift


class Line(gym.Env):
    """A point on a line that the action moves by up to 0.2 per step; the teacher knows where it is
    and pushes it home at 3 units of action per unit of distance."""

    observation_space = gym.spaces.Dict({"position": gym.spaces.Box(-2.0, 2.0, (1,), np.float32)})
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-1.0, 1.0)), 0
        return self._observation(), {}

    def _observation(self):
        return {"position": np.array([self.x], dtype=np.float32)}

    def step(self, action):
        self.x = float(np.clip(self.x + 0.2 * np.clip(action[0], -1, 1), -2, 2))
        self.t += 1
        success = abs(self.x) < 0.05
        return self._observation(), 0.0, success, self.t >= 15, {"is_success": success}


class Teacher:
    def reset(self):
        pass

    def __call__(self, env):
        return np.clip([-3.0 * env.unwrapped.x], -1.0, 1.0).astype(np.float32)


teacher = Teacher()


def _run(seed, rounds=3, switch_weight=0.0):
    env = Line()
    model = PPO("MultiInputPolicy", env, seed=0, learning_rate=3e-3, policy_kwargs={"net_arch": [32, 32]})
    summaries = []
    schedule = Schedule(rounds=rounds, episodes=8, epochs=80, batch_size=32, shift=0, switch_weight=switch_weight)
    data = dagger(env, teacher, model, schedule, seed, on_round=lambda _, summary: summaries.append(summary))
    return model, data, summaries


def test_dagger_teaches_a_student_the_teachers_answer_on_the_states_it_reaches():
    model, data, summaries = _run(seed=1)
    assert [s["beta"] for s in summaries] == [1.0, 0.5, 0.25]
    assert [s["samples"] for s in summaries] == sorted(s["samples"] for s in summaries) and len(data) > 60
    grid = np.linspace(-1.0, 1.0, 21, dtype=np.float32)
    predicted = np.array([model.predict({"position": [x]}, deterministic=True)[0][0] for x in grid])
    np.testing.assert_allclose(predicted, np.clip(-3.0 * grid, -1, 1), atol=0.1)
    observations, actions, weights = data.arrays()
    np.testing.assert_allclose(actions[:, 0], np.clip(-3.0 * observations["position"][:, 0], -1, 1), atol=1e-6)
    assert np.all(weights == 1.0)
    assert summaries[-1]["success_rate"] == 1.0  # the student's own episodes reach home
    # Round 0 is the teacher's alone: its first episode is the teacher's own rollout from seed 1.
    env, rollout = Line(), []
    observation, _ = env.reset(seed=1)
    done = False
    while not done:
        rollout.append(observation["position"][0])
        observation, _, terminated, truncated, _ = env.step(teacher(env))
        done = terminated or truncated
    np.testing.assert_array_equal(observations["position"][: len(rollout), 0], rollout)


def test_a_state_where_the_teachers_action_jumps_weighs_more():
    """With ``switch_weight`` W a state weighs 1 + W x the largest change of the teacher's action
    from the state before it in its episode (1 at an episode's start); without, all weigh 1."""
    _, plain, _ = _run(seed=2, rounds=1)
    assert set(plain.weights) == {1.0}
    _, data, _ = _run(seed=2, rounds=1, switch_weight=5.0)
    actions, weights = data.arrays()[1][:, 0], data.arrays()[2]
    starts = [i for i in range(len(actions)) if i == 0 or data.observations["position"][i][0] != data.observations[
        "position"][i - 1][0] + 0.2 * actions[i - 1]]  # fmt: skip
    for i in range(len(actions)):
        jump = 0.0 if i in starts else abs(actions[i] - actions[i - 1])
        assert weights[i] == pytest.approx(1.0 + 5.0 * jump, rel=1e-5)
    assert max(weights) > 2.0


def test_dagger_repeats_exactly_from_its_seed():
    one, two = _run(seed=4, rounds=2), _run(seed=4, rounds=2)
    np.testing.assert_array_equal(one[1].arrays()[1], two[1].arrays()[1])
    for a, b in zip(one[0].policy.parameters(), two[0].policy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_random_shift_moves_whole_images_by_at_most_its_pad_and_repeats_from_its_seed():
    images = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    one = random_shift(images, 4, torch.Generator().manual_seed(0))
    two = random_shift(images, 4, torch.Generator().manual_seed(0))
    assert one.shape == images.shape and one.dtype == images.dtype and torch.equal(one, two)
    for before, after in zip(images, one, strict=True):
        # Some offset (dy, dx) within the pad maps the padded image onto the shifted one.
        padded = torch.nn.functional.pad(before[None], (4, 4, 4, 4), mode="replicate")[0]
        matches = [(dy, dx) for dy in range(9) for dx in range(9)
                   if torch.equal(padded[:, dy : dy + 16, dx : dx + 16], after)]  # fmt: skip
        assert len(matches) == 1
    assert torch.equal(random_shift(images, 0, torch.Generator()), images)
    uint8 = random_shift(images.to(torch.uint8), 2, torch.Generator().manual_seed(1))
    assert uint8.dtype == torch.uint8


def test_a_dataset_keeps_what_it_was_given_in_order():
    data = Dataset()
    for i in range(3):
        data.add({"a": np.full(2, i), "b": np.full((2, 2), -i)}, np.array([i], dtype=np.float32))
    observations, actions, weights = data.arrays()
    np.testing.assert_array_equal(weights, [1.0, 1.0, 1.0])
    assert len(data) == 3 and observations["a"].shape == (3, 2) and observations["b"].shape == (3, 2, 2)
    np.testing.assert_array_equal(actions[:, 0], [0, 1, 2])
    with pytest.raises(ValueError):
        Dataset().arrays()


def test_a_taught_student_is_a_run_that_evaluates_and_exports_with_its_image(tmp_path):
    """``teach`` writes a run folder: a PPO model that sees what a robot has, its normalisation, the
    command that repeats it; its ONNX export acts as the SB3 policy does, image and state in."""
    from surgisim.agents.dagger import teach
    from surgisim.agents.evaluate import evaluate
    from surgisim.agents.export import export_onnx
    from surgisim.agents.models import load_policy
    from surgisim.agents.onnx_policy import OnnxPolicy

    lines = []
    run = teach("surgisim/NeedleReach-v0", "expert", Schedule(rounds=2, episodes=2, epochs=1), seed=3,
                image_size=48, randomize="appearance", run_dir=tmp_path / "student", progress=lines.append,
                extractor="keypoints", tip_zoom=3)  # fmt: skip
    assert len(lines) == 2 and (run / "checkpoints").is_dir() and (run / "dagger.csv").is_file()
    command = (run / "command.txt").read_text().split()
    assert command[:3] == ["surgisim", "teach", "NeedleReach"] and "--randomize" in command
    assert command[command.index("--tip-zoom") + 1] == "3"
    student = load_policy(run)
    assert student.normalizer is not None and sorted(student.normalizer.norm_obs_keys) == ["goal", "state"]
    exported = OnnxPolicy(export_onnx(run, tmp_path / "student.onnx"))
    assert exported.env_kwargs == {"obs_mode": "robot", "image_size": 48, "tip_zoom": 3.0}
    assert set(exported.observation_shapes) == {"rgb", "tip_rgb", "state", "goal"}
    env = gym.make("surgisim/NeedleReach-v0", obs_mode="robot", image_size=48, randomize="appearance", tip_zoom=3)
    observation, _ = env.reset(seed=11)
    for _ in range(5):
        np.testing.assert_allclose(exported(observation), student(observation), atol=1e-5)
        observation, *_ = env.step(student(observation))
    env.close()
    metrics = evaluate("surgisim/NeedleReach-v0", str(tmp_path / "student.onnx"), episodes=2, seed=500)
    assert metrics["episodes"] == 2


def test_a_teach_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path, monkeypatch):
    """A run that fails in its first round removes what it wrote: the folder it made, or the
    contents of the empty folder it was given (which stays)."""
    from surgisim.agents import dagger

    def broken(self, env):
        raise RuntimeError("the teacher broke")

    monkeypatch.setattr(dagger.PolicyTeacher, "__call__", broken)
    given = tmp_path / "given"
    given.mkdir()
    for run_dir in (tmp_path / "new" / "run", given):
        with pytest.raises(RuntimeError, match="the teacher broke"):
            dagger.teach("surgisim/NeedleReach-v0", "expert", Schedule(rounds=1, episodes=1, epochs=1),
                         image_size=48, randomize=None, run_dir=run_dir, progress=lambda line: None)  # fmt: skip
    assert not (tmp_path / "new" / "run").exists() and (tmp_path / "new").is_dir()
    assert given.is_dir() and not any(given.iterdir())


def test_spatial_softmax_finds_where_a_map_is_bright():
    from surgisim.agents.extractors import KeypointExtractor, SpatialSoftmax

    maps = torch.zeros(1, 2, 21, 41)
    maps[0, 0, 5, 30] = 50.0  # row 5 of 21, column 30 of 41: y = -0.5, x = 0.5
    maps[0, 1, 20, 0] = 50.0  # the bottom left corner
    np.testing.assert_allclose(SpatialSoftmax()(maps)[0].numpy(), [0.5, -1.0, -0.5, 1.0], atol=1e-4)
    space = gym.spaces.Dict({"rgb": gym.spaces.Box(0, 255, (3, 48, 48), np.uint8),
                             "state": gym.spaces.Box(-1, 1, (10,), np.float32)})  # fmt: skip
    extractor = KeypointExtractor(space, keypoints=8)
    features = extractor({"rgb": torch.rand(4, 3, 48, 48), "state": torch.rand(4, 10)})
    assert features.shape == (4, extractor.features_dim) == (4, 2 * 8 + 10)
    assert features[:, :16].abs().max() <= 1.0
