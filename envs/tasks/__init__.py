"""Tasks by name. Adding a task: write one file here with a ``Task`` subclass and list it below."""

from surgisim.envs.tasks.base import Task
from surgisim.envs.tasks.endoscope_track import EndoscopeTrack
from surgisim.envs.tasks.navigate_anatomy import NavigateAnatomy
from surgisim.envs.tasks.needle_handover import NeedleHandover
from surgisim.envs.tasks.needle_insert import NeedleInsert
from surgisim.envs.tasks.needle_pick import NeedlePick
from surgisim.envs.tasks.needle_reach import NeedleReach
from surgisim.envs.tasks.suture_throw import SutureThrow

TASKS: dict[str, type[Task]] = {
    "NeedleReach": NeedleReach,
    "NavigateAnatomy": NavigateAnatomy,
    "EndoscopeTrack": EndoscopeTrack,
    "NeedlePick": NeedlePick,
    "NeedleInsert": NeedleInsert,
    "NeedleHandover": NeedleHandover,
    "SutureThrow": SutureThrow,
}
