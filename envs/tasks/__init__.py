"""Tasks by name. Adding a task: one file here with a ``Task`` subclass (its env card as the
docstring) and its scripted ``Expert``, and one line in ``REGISTRY``."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym

from surgisim.envs.tasks.base import Expert, Task
from surgisim.envs.tasks.endoscope_track import EndoscopeTrack, EndoscopeTrackExpert
from surgisim.envs.tasks.navigate_anatomy import NavigateAnatomy, NavigateAnatomyExpert
from surgisim.envs.tasks.needle_handover import NeedleHandover, NeedleHandoverExpert
from surgisim.envs.tasks.needle_insert import NeedleInsert, NeedleInsertExpert
from surgisim.envs.tasks.needle_pick import NeedlePick, NeedlePickExpert
from surgisim.envs.tasks.needle_reach import NeedleReach, NeedleReachExpert
from surgisim.envs.tasks.suture_throw import SutureThrow, SutureThrowExpert


@dataclass(frozen=True)
class Registered:
    """A task as the package offers it: the task class and its scripted expert; its name, episode
    length, one-line description and what it needs from the world on a robot, from the class."""

    task: type[Task]
    expert: type[Expert]

    @property
    def name(self) -> str:
        return self.task.__name__

    @property
    def max_episode_steps(self) -> int:
        return self.task.max_episode_steps

    @property
    def description(self) -> str:
        return (self.task.__doc__ or "").strip().splitlines()[0]

    @property
    def robot_inputs(self) -> tuple[str, ...]:
        return tuple(robot_input.name for robot_input in self.task.robot_inputs)


REGISTRY: dict[str, Registered] = {
    entry.name: entry
    for entry in (
        Registered(NeedleReach, NeedleReachExpert),
        Registered(NavigateAnatomy, NavigateAnatomyExpert),
        Registered(EndoscopeTrack, EndoscopeTrackExpert),
        Registered(NeedlePick, NeedlePickExpert),
        Registered(NeedleInsert, NeedleInsertExpert),
        Registered(NeedleHandover, NeedleHandoverExpert),
        Registered(SutureThrow, SutureThrowExpert),
    )
}


def make_expert(env: gym.Env, for_student: bool = False) -> Expert:
    """The scripted expert of ``env``'s task (a surgisim env); ``for_student``: the way of it that
    a student seeing only images can copy (``Expert``)."""
    return REGISTRY[env.unwrapped.task_name].expert(env, for_student=for_student)
