"""surgisim environments: dVRK arms in PyBullet as Gymnasium tasks with endoscope cameras.

Importing this module registers ``surgisim/<Task>-v0`` for every task in the ``REGISTRY``.
"""

import gymnasium

from surgisim.envs.camera import SegLabel, depth_to_metres
from surgisim.envs.core import SurgicalEnv
from surgisim.envs.tasks import REGISTRY, make_expert


def env_ids() -> list[str]:
    """The registered environment ids, in task order."""
    return [f"surgisim/{name}-v0" for name in REGISTRY]


def task_name(env_id: str) -> str:
    """The task of an env id: ``surgisim/NeedlePick-v0`` -> ``NeedlePick``."""
    return env_id.removeprefix("surgisim/").rsplit("-v", 1)[0]


def describe(env_id: str) -> str:
    """One line on what the task asks: the first line of its env card."""
    return REGISTRY[task_name(env_id)].description


for _name, _entry in REGISTRY.items():
    if f"surgisim/{_name}-v0" not in gymnasium.registry:
        gymnasium.register(
            id=f"surgisim/{_name}-v0",
            entry_point="surgisim.envs.core:SurgicalEnv",
            kwargs={"task": _name},
            max_episode_steps=_entry.max_episode_steps,
        )

__all__ = ["REGISTRY", "SegLabel", "SurgicalEnv", "depth_to_metres", "describe", "env_ids", "make_expert", "task_name"]
