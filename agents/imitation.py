"""Learning from demonstrations: behaviour cloning and demonstrations in the replay buffer.

Sparse suturing tasks are out of reach of exploration alone on a CPU budget. Following Nair et
al. (2018, "Overcoming exploration in RL with demonstrations"), a run given a Minari dataset
(``surgisim demos record``):

1. checks that the dataset was recorded on the same env with the same spaces;
2. seeds the observation normalisation with the demonstrations' statistics;
3. puts every demonstrated transition into the replay buffer (HER relabels them too);
4. pre-trains the actor by behaviour cloning (``bc_steps`` gradient steps, mean squared error);
5. keeps a behaviour-cloning term in the actor's loss while reinforcement learning goes on
   (``bc_weight``), filtered by the critic: only where the critic values the demonstrated
   action above the policy's own (the Q-filter), so the policy may outgrow its teacher.

PPO has no replay buffer and no Q-function: it gets steps 2 and 4 only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from surgisim.agents.demos import load_demos

BC_BATCH = 256


class Demonstrations:
    """Demonstrated transitions as flat arrays: ``observations`` and ``next_observations`` (dicts
    keyed like the env's observation), ``actions``, ``rewards``, ``terminations``,
    ``truncations`` and ``infos`` (one dict per transition)."""

    def __init__(self, path: Path, env: gym.Env) -> None:
        self.path = Path(path)
        try:
            dataset = load_demos(self.path)
            check_spaces(dataset, env, self.path)
            episodes = list(dataset.iterate_episodes())
        except (FileNotFoundError, ValueError):
            raise
        except Exception as error:  # a damaged HDF5 file fails in many ways
            raise ValueError(f"{path}: cannot read the demonstrations ({type(error).__name__}: {error})") from None
        parts: dict[str, list] = {"observations": [], "next_observations": [], "actions": [], "rewards": [],
                                  "terminations": [], "truncations": [], "infos": []}  # fmt: skip
        for episode in episodes:
            steps = len(episode.actions)
            parts["observations"].append({key: value[:steps] for key, value in episode.observations.items()})
            parts["next_observations"].append({key: value[1:] for key, value in episode.observations.items()})
            parts["actions"].append(np.asarray(episode.actions, dtype=np.float32))
            parts["rewards"].append(np.asarray(episode.rewards, dtype=np.float32))
            parts["terminations"].append(np.asarray(episode.terminations, dtype=bool))
            parts["truncations"].append(np.asarray(episode.truncations, dtype=bool))
            # The recorded infos include the reset's; transition i ends with info i + 1.
            parts["infos"].extend({key: value[i + 1] for key, value in episode.infos.items()} for i in range(steps))
        if not parts["actions"]:
            raise ValueError(f"{path}: the dataset holds no episodes")
        keys = list(env.observation_space.spaces)
        self.observations = {key: np.concatenate([o[key] for o in parts["observations"]]) for key in keys}
        self.next_observations = {key: np.concatenate([o[key] for o in parts["next_observations"]]) for key in keys}
        self.actions = np.concatenate(parts["actions"])
        self.rewards = np.concatenate(parts["rewards"])
        self.terminations = np.concatenate(parts["terminations"])
        self.truncations = np.concatenate(parts["truncations"])
        self.infos = parts["infos"]
        self.episodes = len(parts["actions"])

    def __len__(self) -> int:
        return len(self.actions)

    def batch(self, rng: np.random.Generator, size: int = BC_BATCH) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Random observations and their demonstrated actions."""
        index = rng.integers(len(self), size=size)
        return {key: value[index] for key, value in self.observations.items()}, self.actions[index]


def check_spaces(dataset: Any, env: gym.Env, path: Path) -> None:
    """A ``ValueError`` naming the file unless the dataset was recorded on ``env``'s id and spaces."""
    recorded = dataset.spec.env_spec.id if dataset.spec.env_spec is not None else None
    if recorded != env.spec.id:
        raise ValueError(f"{path}: recorded on {recorded}, not {env.spec.id}; record demos for this env")
    if dataset.action_space.shape != env.action_space.shape:
        raise ValueError(
            f"{path}: actions have shape {dataset.action_space.shape}, {env.spec.id} takes "
            f"{env.action_space.shape} (recorded with another control mode?)"
        )
    wanted, recorded_spaces = env.observation_space.spaces, dataset.observation_space.spaces
    for key, space in wanted.items():
        if key not in recorded_spaces:
            raise ValueError(
                f"{path}: observations lack {key!r} (they have {', '.join(recorded_spaces)}); "
                "record the demos with the same --obs-mode"
            )
        if recorded_spaces[key].shape != space.shape:
            raise ValueError(
                f"{path}: observation {key!r} has shape {recorded_spaces[key].shape}, the env's has {space.shape}"
            )


def fill_replay_buffer(model: BaseAlgorithm, demos: Demonstrations) -> None:
    """Add every demonstrated transition to the model's replay buffer (raw observations, as SB3
    stores them). With several envs each transition fills every env's slot, episodes staying whole."""
    buffer, envs = model.replay_buffer, model.n_envs
    for i in range(len(demos)):
        observation = {key: np.repeat(value[i : i + 1], envs, axis=0) for key, value in demos.observations.items()}
        following = {key: np.repeat(value[i : i + 1], envs, axis=0) for key, value in demos.next_observations.items()}
        truncated = bool(demos.truncations[i]) and not bool(demos.terminations[i])
        done = bool(demos.terminations[i]) or bool(demos.truncations[i])
        info = {**demos.infos[i], "TimeLimit.truncated": truncated}
        buffer.add(observation, following, np.repeat(demos.actions[i : i + 1], envs, axis=0),
                   np.full(envs, demos.rewards[i]), np.full(envs, done), [dict(info) for _ in range(envs)])  # fmt: skip


def seed_normalizer(model: BaseAlgorithm, demos: Demonstrations) -> None:
    """Start the running observation statistics from the demonstrations."""
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        for key, statistics in normalizer.obs_rms.items():
            statistics.update(demos.observations[key].astype(np.float64))


def policy_action(model: BaseAlgorithm, observation: dict[str, torch.Tensor]) -> torch.Tensor:
    """The deterministic action of the model's policy, differentiable."""
    return model.policy._predict(observation, deterministic=True)


def actor_optimizer(model: BaseAlgorithm) -> torch.optim.Optimizer:
    """The actor's own optimizer (measured: a separate one, a frozen normalisation and a critic
    warm-up each did worse on NeedleInsert and NavigateAnatomy than this plain set-up)."""
    return model.actor.optimizer if hasattr(model, "actor") else model.policy.optimizer


def normalised(model: BaseAlgorithm, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Observations (one or a batch) as the model's policy takes them: through its run's normalisation."""
    normalizer = model.get_vec_normalize_env()
    return normalizer.normalize_obs(observation) if normalizer is not None else observation


def tensors(model: BaseAlgorithm, observation: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """A batch of observations, normalised, as the policy's tensors (images channels first)."""
    return model.policy.obs_to_tensor(normalised(model, observation))[0]


def _q_value(model: BaseAlgorithm, observation: dict[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
    """The critic's (pessimistic) value of actions: the least of the Q-networks, or the mean of
    TQC's quantiles."""
    values = model.critic(observation, action)
    if isinstance(values, tuple):
        return torch.min(torch.cat(values, dim=1), dim=1).values
    return values.mean(dim=(1, 2))


def behaviour_clone(model: BaseAlgorithm, demos: Demonstrations, steps: int, seed: int) -> float:
    """``steps`` gradient steps of mean squared error between the policy's and the demonstrated
    actions; returns the last loss."""
    rng, optimizer, loss = np.random.default_rng(seed), actor_optimizer(model), torch.zeros(())
    model.policy.set_training_mode(True)
    for _ in range(steps):
        observation, action = demos.batch(rng)
        loss = torch.mean((policy_action(model, tensors(model, observation)) - torch.as_tensor(action)) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.policy.set_training_mode(False)
    return float(loss.detach())


class DemoRegularizer(BaseCallback):
    """A Q-filtered behaviour-cloning step on the actor after every rollout, once learning starts."""

    def __init__(self, demos: Demonstrations, weight: float, seed: int) -> None:
        super().__init__()
        self.demos, self.weight, self.rng = demos, weight, np.random.default_rng(seed)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps < self.model.learning_starts:
            return
        observation, demonstrated = self.demos.batch(self.rng)
        inputs, target = tensors(self.model, observation), torch.as_tensor(demonstrated)
        action = policy_action(self.model, inputs)
        with torch.no_grad():
            better = (_q_value(self.model, inputs, target) > _q_value(self.model, inputs, action)).float()
        loss = self.weight * torch.mean(better * torch.sum((action - target) ** 2, dim=1))
        optimizer = actor_optimizer(self.model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
