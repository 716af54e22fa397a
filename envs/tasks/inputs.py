"""Robot inputs: what a task's observation needs from the world besides the arms it drives, which
on a robot must come from somewhere (an operator's goal, a scene file, a tracker).

Each is a small class a task names in its ``robot_inputs``. It says what the simulator holds (the
ROS 2 twin publishes that, as the robot's source would), how a model of the robot takes a value
received from that source, and how it keeps following it each tick. The ROS 2 bridge carries each
on one topic (``surgisim.ros_bridge.world.CHANNELS``). Values are in the world frame (m, rad); an
instance keeps what one runner has received.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar, Protocol

import numpy as np

from surgisim.envs.controllers import CONTROL_PERIOD
from surgisim.envs.scene import Scene


class SurgicalEnv(Protocol):
    """What a robot input uses of a surgisim env (``surgisim.envs.SurgicalEnv``): its task and
    scene, and the robot-facing methods that check what they are given."""

    task: Any
    scene: Scene

    def reset(self, *, seed: int | None = None) -> Any: ...

    def set_goal(self, position: Any) -> None: ...

    def layout(self) -> dict[str, Any]: ...

    def set_layout(self, layout: dict[str, Any]) -> None: ...


class RobotInput:
    """One thing a task needs from the world. ``per_episode``: fixed for an episode (a runner's
    policy starts afresh when it changes), else it changes as the world moves. ``restarts``: a
    new value is a new episode of the task."""

    name: ClassVar[str]
    description: ClassVar[str]  # what it is, for the env card
    wanted: ClassVar[str]  # what a runner waits for, e.g. "a goal"
    per_episode: ClassVar[bool] = False
    restarts: ClassVar[bool] = False
    # In the endoscope image: a policy that sees what a robot has (obs_mode "robot") needs no
    # source for it; a runner of one takes it when given, for the progress it reports.
    seen: ClassVar[bool] = True

    def __init__(self) -> None:
        self.value: Any = None  # the latest value received

    @property
    def received(self) -> bool:
        return self.value is not None

    def sense(self, env: SurgicalEnv) -> Any:
        """The simulator's value, as the robot's source would give it."""
        raise NotImplementedError

    def receive(self, env: SurgicalEnv, value: Any, stamp: float) -> None:
        """The model takes a value from the robot's source (``stamp``: when it was measured, s); a
        ``ValueError`` says why a value cannot be taken, and nothing changes then."""
        self.take(env, value, stamp)
        self.value = value

    def take(self, env: SurgicalEnv, value: Any, stamp: float) -> None:
        raise NotImplementedError

    def follow(self, env: SurgicalEnv) -> None:
        """Each tick, after the model's arms are set from the robot's and before it observes."""


class Goal(RobotInput):
    name = "goal"
    description = "a goal position (m) an operator chooses"
    wanted = "a goal"
    per_episode = True
    seen = False  # the operator's choice: nothing in the image says where

    def sense(self, env: SurgicalEnv) -> np.ndarray:
        return env.task.desired_goal(env.scene)[:3].astype(np.float64)

    def take(self, env: SurgicalEnv, value: Any, stamp: float) -> None:
        env.set_goal(value)


class Layout(RobotInput):
    name = "layout"
    description = "the episode's fixed scenery (Task.layout_keys: anatomy, tissue marks), from a scene file"
    wanted = "the scene"
    per_episode = restarts = True

    def sense(self, env: SurgicalEnv) -> dict[str, Any]:
        return env.layout()

    def take(self, env: SurgicalEnv, value: Any, stamp: float) -> None:
        """A new scene is a new episode: the model starts as the task's card says (e.g. the needle in
        the jaws for NeedleInsert), with this scenery."""
        env.set_layout(value)  # checked before the reset: a wrong layout changes nothing
        env.reset(seed=0)
        env.set_layout(value)


class Needle(RobotInput):
    """The task's rules (grasps, tissue, thread) run on the measured arms, and the tracked pose
    corrects the needle, held where the tracker sees it."""

    name = "needle"
    description = (
        "the needle's pose, from a tracker; whether it is held, the holes it made and the thread drawn "
        "follow from it by the task's own rules"
    )
    wanted = "the needle's pose"

    def __init__(self) -> None:
        super().__init__()
        self.pending: np.ndarray | None = None  # a pose not yet taken by the model

    def sense(self, env: SurgicalEnv) -> np.ndarray:
        return env.task.needle_pose()

    def take(self, env: SurgicalEnv, value: Any, stamp: float) -> None:
        self.pending = np.asarray(value, dtype=np.float64)

    def follow(self, env: SurgicalEnv) -> None:
        env.task.step_world(env.scene)
        if self.pending is not None:
            env.task.track_needle(self.pending)
            self.pending = None


class Lesion(RobotInput):
    """The lesion's position now, and its displacement over one control period from the stamps
    of successive positions."""

    name = "lesion"
    description = "the tracked lesion's position; its velocity follows from successive positions"
    wanted = "the lesion's position"

    def __init__(self) -> None:
        super().__init__()
        self.history: deque[tuple[float, np.ndarray]] = deque(maxlen=1000)  # (stamp, world position)

    def sense(self, env: SurgicalEnv) -> np.ndarray:
        return env.task.lesion()

    def take(self, env: SurgicalEnv, value: Any, stamp: float) -> None:
        self.history.append((stamp, np.asarray(value, dtype=np.float64)))

    def follow(self, env: SurgicalEnv) -> None:
        stamp, position = self.history[-1]
        then, earlier = next(((t, p) for t, p in reversed(self.history) if t <= stamp - CONTROL_PERIOD),
                             self.history[0])  # fmt: skip
        rate = CONTROL_PERIOD / (stamp - then) if stamp > then else 0.0  # scales a shorter history up
        env.task.track_lesion(position, (position - earlier) * rate)
