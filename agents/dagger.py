"""Teacher and student: DAgger (Ross et al. 2011) with image augmentation (DrQ's random shift,
Kostrikov et al. 2020), written here because the ``imitation`` library pins older Gymnasium and SB3.

A *teacher* acts on what the simulator knows (a scripted expert reads the needle's true pose and
where the jaws really are); a *student* is an SB3 policy that sees only what a robot has
(``obs_mode="robot"``: the endoscope image, the arms' reported state, an operator's goal). Each
round runs episodes in which every step's action is the teacher's with probability ``beta`` and
the student's otherwise, labels every visited state with the teacher's action, adds them to the
data of all rounds, and trains the student on all of it (mean squared error of its deterministic
action, images randomly shifted). Round 0 is the teacher's alone (behaviour cloning); ``beta``
halves each round, so that later rounds visit the states the student itself reaches.
"""

from __future__ import annotations

import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv

from surgisim.agents import checkpoint
from surgisim.agents.config import validate
from surgisim.agents.evaluate import make_policy
from surgisim.agents.imitation import actor_optimizer, normalised, policy_action
from surgisim.agents.models import check_env_kwargs, make_env
from surgisim.agents.train import Interrupt, build_model, new_run_dir
from surgisim.envs import make_expert, task_name
from surgisim.envs.files import check_writable


class Teacher(Protocol):
    """What labels the student's states: ``reset()`` at each episode start, then
    ``teacher(env)``, the action for the env's current state (it may read what only the simulator
    knows)."""

    def reset(self) -> None: ...

    def __call__(self, env: gym.Env) -> np.ndarray: ...


@dataclass
class Schedule:
    """How much data and training each round takes, and the teacher's share of the actions."""

    rounds: int = 4
    episodes: int = 20  # per round
    epochs: int = 4  # passes over all the data gathered so far, per round
    batch_size: int = 128
    shift: int = 4  # pixels: images move by up to this many in x and y (DrQ: 4 at 84 px)
    beta_decay: float = 0.5  # the teacher's share: 1 in round 0, then times this per round
    # Weight of a state where the teacher's action jumps (a phase's end: descend, close the
    # jaws): 1 + switch_weight x the largest change of any action number from the step before.
    # Such states are few, and a regression that averages them away never closes the jaws.
    switch_weight: float = 0.0

    def beta(self, round_index: int) -> float:
        return self.beta_decay**round_index


@dataclass
class Dataset:
    """The states visited in every round (observation dicts as the student sees them), labelled
    with the teacher's actions."""

    observations: dict[str, list[np.ndarray]] = field(default_factory=dict)
    actions: list[np.ndarray] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    def add(self, observation: dict[str, np.ndarray], action: np.ndarray, weight: float = 1.0) -> None:
        for key, value in observation.items():
            self.observations.setdefault(key, []).append(np.array(value))
        self.actions.append(np.asarray(action, dtype=np.float32))
        self.weights.append(float(weight))

    def __len__(self) -> int:
        return len(self.actions)

    def arrays(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """The observations, actions and weights, stacked."""
        observations = {key: np.stack(values) for key, values in self.observations.items()}
        return observations, np.stack(self.actions), np.asarray(self.weights, dtype=np.float32)


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """DrQ's augmentation: each image (N, C, H, W) padded by repeating its border ``pad`` pixels,
    then cropped back to H x W at a random offset (the same offset for all its channels)."""
    if pad <= 0:
        return images
    count, _, height, width = images.shape
    padded = torch.nn.functional.pad(images.float(), (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (count, 2), generator=generator)
    shifted = torch.stack([padded[i, :, y : y + height, x : x + width] for i, (y, x) in enumerate(offsets.tolist())])
    return shifted.to(images.dtype)


def _image_keys(model: BaseAlgorithm) -> list[str]:
    return [key for key, space in model.observation_space.spaces.items() if len(space.shape) == 3]


def _update_statistics(model: BaseAlgorithm, data: Dataset, start: int) -> None:
    """Bring the model's observation statistics (its state vectors') up to the data from ``start`` on."""
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None and start < len(data):
        for key in normalizer.norm_obs_keys:
            normalizer.obs_rms[key].update(np.stack(data.observations[key][start:]).astype(np.float64))


def fit_student(model: BaseAlgorithm, data: Dataset, schedule: Schedule, generator: torch.Generator) -> float:
    """``schedule.epochs`` passes of behaviour cloning over ``data``; returns the last epoch's mean loss."""
    observations, actions, weights = data.arrays()
    observations = normalised(model, observations)
    images, policy, optimizer = _image_keys(model), model.policy, actor_optimizer(model)
    policy.set_training_mode(True)
    loss_sum = torch.zeros(())
    for _ in range(schedule.epochs):
        order = torch.randperm(len(actions), generator=generator).numpy()
        loss_sum, batches = torch.zeros(()), 0
        for start in range(0, len(order), schedule.batch_size):
            index = order[start : start + schedule.batch_size]
            batch = policy.obs_to_tensor({key: value[index] for key, value in observations.items()})[0]
            for key in images:
                batch[key] = random_shift(batch[key], schedule.shift, generator)
            errors = torch.mean((policy_action(model, batch) - torch.as_tensor(actions[index])) ** 2, dim=1)
            weight = torch.as_tensor(weights[index])
            loss = torch.sum(weight * errors) / torch.sum(weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum, batches = loss_sum + loss.detach(), batches + 1
        loss_sum = loss_sum / max(batches, 1)
    policy.set_training_mode(False)
    return float(loss_sum)


def dagger(env: gym.Env, teacher: Teacher, model: BaseAlgorithm, schedule: Schedule, seed: int,
           on_round: Callable[[int, dict[str, Any]], None] | None = None,
           stop: Callable[[], bool] = lambda: False) -> Dataset:  # fmt: skip
    """Teach ``model`` (an SB3 model whose observation space is ``env``'s) from ``teacher`` by
    DAgger. Episode ``k`` of the run is reset with seed ``seed + k``; the choice between teacher and
    student and the augmentation draw from ``seed`` too, so a run repeats exactly. ``on_round(i,
    summary)`` after each round (its data size, loss, and how often the executed episodes
    succeeded); ``stop()`` ends the run after the round in progress."""
    rng, generator, data = np.random.default_rng(seed), torch.Generator().manual_seed(seed), Dataset()
    episode = 0
    for round_index in range(schedule.rounds):
        beta, successes, start = schedule.beta(round_index), 0, len(data)
        for _ in range(schedule.episodes):
            observation, info = env.reset(seed=seed + episode)
            teacher.reset()
            episode += 1
            done, previous = False, None
            while not done:
                label = teacher(env)
                jump = 0.0 if previous is None else float(np.max(np.abs(label - previous)))
                data.add(observation, label, 1.0 + schedule.switch_weight * jump)
                previous = label
                if rng.random() < beta:
                    action = label
                else:
                    action = model.predict(normalised(model, observation), deterministic=True)[0]
                observation, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            successes += bool(info.get("is_success", False))
        _update_statistics(model, data, start)
        loss = fit_student(model, data, schedule, generator)
        if on_round is not None:
            on_round(round_index, {"round": round_index, "beta": beta, "samples": len(data), "loss": loss,
                                   "success_rate": successes / schedule.episodes})  # fmt: skip
        if stop():
            break
    return data


class PolicyTeacher:
    """A policy that sees the simulator's privileged state (``expert``: the scripted expert as it
    acts for a student; ``pretrained``, a run folder or ``.onnx`` of a state policy) as a teacher."""

    def __init__(self, name: str, env: gym.Env) -> None:
        self.name = name
        self.policy = make_expert(env, for_student=True) if name == "expert" else make_policy(name, env)

    def reset(self) -> None:
        self.policy.reset()

    def __call__(self, env: gym.Env) -> np.ndarray:
        return np.asarray(self.policy(env.unwrapped.privileged_observation()), dtype=np.float32)


STUDENT_HYPERPARAMETERS = {"image_size": 64, "net_arch": [256, 256], "learning_rate": 0.0003, "log_std_init": -1.0}


def teach(env_id: str, teacher: str = "expert", schedule: Schedule | None = None, seed: int = 0,
          image_size: int = 64, randomize: str | None = "appearance,kinematics,control",
          run_dir: Path | None = None, progress: Callable[[str], None] = print,
          torch_threads: int = 1, extractor: str = "cnn", tip_zoom: float | None = None) -> Path:  # fmt: skip
    """Teach a student that sees what a robot has (``obs_mode="robot"``) from ``teacher`` by DAgger,
    on envs randomised by ``randomize`` (with ``tip_zoom``, it also sees the magnified view around
    the reported tip); returns its run folder (a PPO run: ``evaluate``,
    ``export`` and ``ros run`` take it as any other). A checkpoint is written after every round;
    Ctrl-C stops after the round in progress with the last one kept."""
    schedule = schedule or Schedule()
    hyper = {
        **STUDENT_HYPERPARAMETERS,
        "image_size": image_size,
        "batch_size": schedule.batch_size,
        "extractor": extractor,
        **({"tip_zoom": tip_zoom} if tip_zoom is not None else {}),
    }
    settings: dict[str, Any] = {
        "env_id": env_id, "algo": "ppo", "seed": seed, "obs_mode": "robot", "hyperparameters": hyper, "demos": None,
        "env_kwargs": check_env_kwargs(env_id, {"randomize": randomize} if randomize else {}),
        "teacher": {"policy": teacher, **asdict(schedule)},
    }  # fmt: skip
    validate(hyper, "student settings", "ppo")
    run_dir = check_writable(run_dir if run_dir is not None else new_run_dir(env_id, "dagger", seed), "run folder")
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise FileExistsError(f"{run_dir} exists; choose another --run-dir")
    made_folder = not run_dir.exists()
    torch.manual_seed(seed)
    torch.set_num_threads(torch_threads)
    env = make_env(settings)
    try:
        normalizer = checkpoint.normaliser(DummyVecEnv([lambda: env]), settings)
        normalizer.training = False  # its statistics come from the labelled data, round by round
        model = build_model(settings, normalizer, run_dir)
        label = PolicyTeacher(teacher, env)
        run_dir.mkdir(parents=True, exist_ok=True)
        checkpoint.write_settings(run_dir / checkpoint.CONFIG, settings)
        command = ["surgisim", "teach", task_name(env_id), "--teacher", teacher, "--rounds", schedule.rounds,
                   "--episodes", schedule.episodes, "--epochs", schedule.epochs, "--image-size", image_size,
                   "--randomize", randomize or "none", "--extractor", extractor, "--seed", seed,
                   *(["--tip-zoom", f"{tip_zoom:g}"] if tip_zoom is not None else []),
                   *(["--switch-weight", f"{schedule.switch_weight:g}"] if schedule.switch_weight else []),
                   *(["--shift", schedule.shift] if schedule.shift != Schedule.shift else []),
                   "--run-dir", run_dir.resolve()]  # fmt: skip
        (run_dir / "command.txt").write_text(shlex.join(str(word) for word in command) + "\n")
        rounds = run_dir / "dagger.csv"
        rounds.write_text("round,beta,samples,loss,success_rate,wall_s\n")
        started = time.perf_counter()

        def on_round(index: int, summary: dict[str, Any]) -> None:
            model.num_timesteps = summary["samples"]
            checkpoint.save(model, run_dir, settings)
            wall = time.perf_counter() - started
            with rounds.open("a") as handle:
                handle.write(f"{index},{summary['beta']:g},{summary['samples']},{summary['loss']:.6f},"
                             f"{summary['success_rate']:.3f},{wall:.1f}\n")  # fmt: skip
            progress(
                f"round {index}: beta {summary['beta']:g}, {summary['samples']} labelled states, loss "
                f"{summary['loss']:.4f}, executed episodes succeeded {summary['success_rate']:.2f} ({wall:.0f} s)"
            )

        with Interrupt() as interrupt:
            dagger(env, label, model, schedule, seed, on_round, stop=lambda: interrupt.requested)
    except BaseException:
        if run_dir.is_dir() and not (run_dir / checkpoint.MANIFEST).exists():
            _remove_unfinished(run_dir, made_folder)
        raise
    finally:
        env.close()
    return run_dir


def _remove_unfinished(run_dir: Path, made_folder: bool) -> None:
    """A run that failed before its first checkpoint leaves nothing: everything in its folder
    (empty or absent when the run began) was written by it."""
    for entry in run_dir.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if made_folder:
        run_dir.rmdir()
