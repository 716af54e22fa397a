"""Roll out a policy for seeded episodes and summarise success and task metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from surgisim.agents.onnx_policy import OnnxPolicy
from surgisim.agents.pretrained import load_pretrained
from surgisim.envs import make_expert  # importing surgisim.envs registers the environments


class ScriptedExpert:
    """The task's scripted expert as a policy of any observation mode: where the env shows only
    what a robot has (``obs_mode="robot"``), it acts on what the simulator knows instead."""

    def __init__(self, env: gym.Env) -> None:
        self.env, self.expert = env.unwrapped, make_expert(env)

    def reset(self) -> None:
        self.expert.reset()

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        if self.env.obs_mode == "robot":
            observation = self.env.privileged_observation()
        return self.expert(observation)


def make_policy(name: str | Any, env: gym.Env) -> Any:
    """A callable ``policy(observation) -> action`` with a ``reset()`` method: ``"expert"``,
    ``"pretrained"`` (the shipped state policy), ``"vision"`` (the shipped policy that sees what a
    robot has), a run folder or model file (a trained model), an
    exported ``.onnx`` policy, or such a callable."""
    if callable(name):
        return name
    if name == "expert":
        return ScriptedExpert(env)
    if name in ("pretrained", "vision"):
        return load_pretrained(env.spec.id, vision=name == "vision")
    if Path(name).suffix == ".onnx" and Path(name).is_file():
        return OnnxPolicy(Path(name))
    if Path(name).exists():
        from surgisim.agents.models import load_policy  # torch and SB3: loaded only for a trained model

        return load_policy(Path(name))
    raise ValueError(f"unknown policy {name!r}; use expert, pretrained, vision, a run folder, a model .zip or a .onnx")


def check_policy(policy: Any, env_id: str, observation_space: gym.spaces.Dict, action_space: gym.spaces.Box) -> None:
    """A ``ValueError`` naming both when a learned policy was not made for this env: trained on
    another env id, or taking other observation keys or shapes, or giving another action size.
    Experts and plain callables say nothing of what they take and pass."""
    name = getattr(policy, "source", type(policy).__name__)
    trained_on = getattr(policy, "env_id", None)
    if trained_on is not None and trained_on != env_id:
        raise ValueError(f"{name} was trained on {trained_on}, not {env_id}; give a policy trained on {env_id}")
    for key, shape in getattr(policy, "observation_shapes", {}).items():
        if key not in observation_space.spaces:
            given = ", ".join(observation_space.spaces)
            raise ValueError(f"{name} takes observation {key!r}, which {env_id} does not give (it gives {given})")
        if tuple(shape) != observation_space[key].shape:
            raise ValueError(
                f"{name} takes {key!r} of shape {tuple(shape)}; {env_id} gives {observation_space[key].shape}: "
                "it was made for another task or observation mode"
            )
    action_shape = getattr(policy, "action_shape", None)
    if action_shape is not None and tuple(action_shape) != action_space.shape:
        raise ValueError(f"{name} gives actions of shape {tuple(action_shape)}; {env_id} takes {action_space.shape}")


def policy_env(env_id: str, policy: str | Any, env_kwargs: dict[str, Any], fixed: tuple[str, ...] = ()
               ) -> tuple[gym.Env, Any]:  # fmt: skip
    """An env of ``env_id`` and the policy to run on it: the env is made with ``env_kwargs`` and
    what a learned policy needs of it (its run's observation mode, image size, control, tool...)
    except the ``fixed`` arguments, and the policy checked against it (``check_policy``)."""
    env = gym.make(env_id, **env_kwargs)
    try:
        actor = make_policy(policy, env)
        needs = {key: value for key, value in getattr(actor, "env_kwargs", {}).items() if key not in fixed}
        made_with = env.unwrapped.arguments
        if any(made_with.get(key) != value for key, value in needs.items()):
            env.close()
            env = gym.make(env_id, **{**env_kwargs, **needs})
        check_policy(actor, env_id, env.observation_space, env.action_space)
    except BaseException:
        env.close()
        raise
    return env, actor


def evaluate(
    env_id: str,
    policy: str | Any = "expert",
    episodes: int = 10,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    on_frame: Callable[[np.ndarray], None] | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` episodes (episode ``i`` reset with seed ``seed + i``) and return metrics.

    ``on_frame`` receives the rendered endoscope view after every reset and step (it needs
    ``render_mode="rgb_array"`` in ``env_kwargs``).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    env, actor = policy_env(env_id, policy, env_kwargs or {})
    successes, lengths, returns, distances, costs = [], [], [], [], []
    try:
        for episode in range(episodes):
            observation, info = env.reset(seed=seed + episode)
            actor.reset()
            if on_frame:
                on_frame(env.render())
            done, length, total, cost = False, 0, 0.0, 0.0
            while not done:
                observation, reward, terminated, truncated, info = env.step(actor(observation))
                done = terminated or truncated
                length, total, cost = length + 1, total + reward, cost + info["cost"]
                if on_frame:
                    on_frame(env.render())
            successes.append(info["is_success"])
            lengths.append(length)
            returns.append(total)
            distances.append(info["distance_mm"])
            costs.append(cost)
    finally:
        env.close()
    return {
        "env_id": env_id,
        "policy": policy if isinstance(policy, str) else type(policy).__name__,
        "episodes": episodes,
        "seed": seed,
        "success_rate": float(np.mean(successes)),
        "mean_episode_length": float(np.mean(lengths)),
        "mean_return": float(np.mean(returns)),
        "mean_final_distance_mm": float(np.mean(distances)),
        "cost_rate": float(np.mean(np.array(costs) > 0)),
        "mean_cost": float(np.mean(costs)),
    }
