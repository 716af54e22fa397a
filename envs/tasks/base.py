"""What every task provides. A task is one small file: a subclass of ``Task`` with an env card,
and its scripted ``Expert``."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np

from surgisim.envs.documents import excerpt
from surgisim.envs.robots import Arm
from surgisim.envs.scene import Scene
from surgisim.envs.tasks.inputs import Goal, RobotInput

LAYOUT_MARGIN = 0.02  # m: scenery from a scene file may lie this far outside the tip's workspace box


class Task:
    """Base class. Subclasses set the class attributes and implement ``build``, ``reset`` and goals.

    Goal-based rewards are vectorised over the last axis so that HER can relabel batches:
    ``sparse`` is -1 until the goal is within ``goal_tolerance`` (then 0), ``dense`` is the
    negative distance in metres. A task's safety ``cost`` (e.g. a contact) is subtracted with
    weight ``cost_weight``; it is read from ``info["cost"]``.
    """

    arms: ClassVar[tuple[str, ...]] = ("psm1",)  # the arms the action drives, in order: psm1, psm2, ecm
    # Cartesian PSM actions turn the jaws by a roll about their axis ("roll") or by any rotation ("full").
    wrist: ClassVar[str] = "roll"
    max_episode_steps: ClassVar[int] = 50
    goal_tolerance: ClassVar[float] = 0.005  # metres
    terminate_on_success: ClassVar[bool] = True
    cost_weight: ClassVar[float] = 0.0
    workspace: ClassVar[tuple[tuple[float, ...], tuple[float, ...]]] = ((-0.05, -0.05, 0.003), (0.05, 0.05, 0.06))
    # What the task's observation needs from the world besides the driven arms' own state, which
    # on a robot must come from somewhere (``surgisim.envs.tasks.inputs``).
    robot_inputs: ClassVar[tuple[type[RobotInput], ...]] = (Goal,)
    # The keys of ``get_state`` that are the episode's fixed scenery (its "layout" input): a row
    # per object, whose first three numbers are its world position (m).
    layout_keys: ClassVar[tuple[str, ...]] = ()
    # Whether the world moves with time whatever the arms do (a lesion on its path), so that a ROS 2
    # twin ticking faster than the control period advances it once per period, not every tick.
    moves_by_itself: ClassVar[bool] = False

    def __init__(self) -> None:
        self.failed = False  # set when the episode can no longer count as a success

    def build(self, scene: Scene) -> None:
        """Create the task's bodies once (reset only moves them)."""

    def reset(self, scene: Scene, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def step_world(self, scene: Scene) -> None:
        """Advance whatever the task moves by itself after the arm has moved, and set ``failed``
        if something happened that rules out success in this episode."""

    def observation(self, scene: Scene) -> np.ndarray:
        """Task features appended to the arm state in ``obs["observation"]``."""
        return np.zeros(0)

    def achieved_goal(self, scene: Scene) -> np.ndarray:
        raise NotImplementedError

    def desired_goal(self, scene: Scene) -> np.ndarray:
        raise NotImplementedError

    def set_goal(self, scene: Scene, position: np.ndarray) -> None:
        """Put the goal at a world position (m), as an operator would choose it on a robot."""
        raise ValueError(f"{type(self).__name__}'s goal is not a position that can be set")

    def layout(self) -> dict[str, Any]:
        """The episode's fixed scenery (``layout_keys``), as plain lists: what a robot's scene file holds."""
        state = self.get_state()
        return {key: np.asarray(state[key]).tolist() for key in self.layout_keys}

    def set_layout(self, scene: Scene, layout: dict[str, Any]) -> None:
        """Put the scenery where a scene file says (world frame, m and rad). A ``ValueError`` names
        a key that is missing, unknown, or not finite numbers of the right shape; nothing changes then."""
        state = self.get_state()
        unknown, missing = set(layout) - set(self.layout_keys), set(self.layout_keys) - set(layout)
        if unknown or missing:
            raise ValueError(f"{type(self).__name__}'s layout has the keys {', '.join(self.layout_keys) or '(none)'}; "
                             f"missing: {', '.join(sorted(missing)) or 'none'}, unknown: "
                             f"{', '.join(sorted(unknown)) or 'none'}")  # fmt: skip
        for key in self.layout_keys:
            expected = np.shape(state[key])
            try:
                value = np.asarray(layout[key], dtype=np.float64)
            except (TypeError, ValueError):
                value = np.full(1, np.nan)
            if value.shape != expected or not np.all(np.isfinite(value)):
                raise ValueError(f"layout {key!r}: {excerpt(layout[key])} is not {expected} finite numbers")
            low, high = np.array(self.workspace) + np.array([[-LAYOUT_MARGIN], [LAYOUT_MARGIN]])
            positions = value.reshape(-1, value.shape[-1])[:, :3]
            if np.any(positions < low) or np.any(positions > high):
                box = f"x, y, z from {np.round(low, 3).tolist()} to {np.round(high, 3).tolist()} m"
                raise ValueError(f"layout {key!r}: {excerpt(layout[key])} puts scenery outside the task's workspace "
                                 f"({box})")  # fmt: skip
            state[key] = value
        self.set_state(scene, state)

    def obstacles(self) -> list[str]:
        """The bodies an instrument must not touch (organs, vessels), by name."""
        return []

    def cost(self, scene: Scene) -> float:
        """Safety cost of the current step (0 when safe)."""
        return 0.0

    def get_state(self) -> dict[str, Any]:
        """Everything ``reset`` drew, so that an episode can be restored exactly."""
        return {"failed": self.failed}

    def set_state(self, scene: Scene, state: dict[str, Any]) -> None:
        self.failed = bool(state["failed"])

    def distance(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)

    def is_success(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        return self.distance(achieved_goal, desired_goal) < self.goal_tolerance

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any, reward_type: str
    ) -> np.ndarray:
        distance = self.distance(achieved_goal, desired_goal)
        reward = -(distance >= self.goal_tolerance).astype(np.float64) if reward_type == "sparse" else -distance
        if self.cost_weight:
            reward = reward - self.cost_weight * info_values(info, "cost", np.shape(distance))
        return reward

    def extra_info(self, scene: Scene) -> dict[str, Any]:
        """Task-specific entries for ``info`` (e.g. what a staged dense reward needs)."""
        return {}


def info_values(info: Any, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """``info[key]`` (0 where missing) from one info dict or an array of them (as HER passes)."""
    if isinstance(info, dict):
        return np.full(shape, float(info.get(key, 0.0)))
    return np.array([float(item.get(key, 0.0)) for item in np.ravel(info)]).reshape(shape)


class ExpertEnv(Protocol):
    """What a scripted expert uses of the env: its task (with the privileged state the expert may
    read), its scene, the driven arms, and the action that moves an arm towards a pose."""

    task: Any
    scene: Scene
    arms: list[Arm]

    def action_toward(self, position: np.ndarray, jaw: float = 0.0, roll: float = 0.0, arm: int = 0,
                      rotation: np.ndarray | None = None) -> np.ndarray: ...  # fmt: skip


class Expert:
    """A task's scripted policy, beside the task in its file: proof that the task is solvable and a
    source of demonstrations. ``reset()`` at each episode start, then ``expert(observation) ->
    action`` in the env's control mode."""

    def __init__(self, env: gym.Env, for_student: bool = False) -> None:
        self.env: ExpertEnv = env.unwrapped  # type: ignore[assignment]
        # A teacher of a student that sees only images avoids choices the image cannot explain
        # (a turn of the jaws the task does not need, which end of a symmetric needle to take).
        self.for_student = for_student
        self.reset()

    def reset(self) -> None:
        """Forget anything kept from the previous episode."""

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError
