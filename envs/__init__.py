"""surgisim environments: dVRK arms in PyBullet as Gymnasium tasks with endoscope cameras.

Importing this module registers ``surgisim/<Task>-v0`` for every task in ``TASKS``.
"""

import gymnasium

from surgisim.envs.camera import SegLabel, depth_to_metres
from surgisim.envs.core import SurgicalEnv
from surgisim.envs.tasks import TASKS


def env_ids() -> list[str]:
    """The registered environment ids, in task order."""
    return [f"surgisim/{name}-v0" for name in TASKS]


def task_name(env_id: str) -> str:
    """The task of an env id: ``surgisim/NeedlePick-v0`` -> ``NeedlePick``."""
    return env_id.removeprefix("surgisim/").rsplit("-v", 1)[0]


def describe(env_id: str) -> str:
    """One line on what the task asks: the first line of its env card."""
    return (TASKS[task_name(env_id)].__doc__ or "").strip().splitlines()[0]


for _name, _task in TASKS.items():
    if f"surgisim/{_name}-v0" not in gymnasium.registry:
        gymnasium.register(
            id=f"surgisim/{_name}-v0",
            entry_point="surgisim.envs.core:SurgicalEnv",
            kwargs={"task": _name},
            max_episode_steps=_task.max_episode_steps,
        )

__all__ = ["TASKS", "SegLabel", "SurgicalEnv", "depth_to_metres", "describe", "env_ids", "task_name"]
