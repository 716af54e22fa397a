"""The surgisim topics the twin and the runner share: what a task needs from the world besides
the arms (a goal, the scene's layout, a tracked needle or lesion), episodes and progress, the
camera, and what RViz shows. Poses are in the first driven arm's base frame, as the dVRK's are."""

from __future__ import annotations

from typing import Any

from surgisim.envs.documents import excerpt
from surgisim.ros_bridge import messages as msg
from surgisim.ros_bridge.endpoints import QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR, QoS, Topic

GOAL = Topic("/surgisim/goal", msg.POSE_STAMPED, QOS_LATCHED)
RESET = Topic("/surgisim/reset", msg.STRING_STAMPED, QOS_DEFAULT)  # a new episode: the seed, or "" for the next
# What RViz needs to show the arm: its links on /tf (tf2's broadcaster QoS) and the URDF, latched.
TF = Topic("/tf", msg.TF_MESSAGE, QoS(reliable=True, depth=100))
ROBOT_DESCRIPTION = Topic("/robot_description", msg.STRING, QOS_LATCHED)
INFO = Topic("/surgisim/info", msg.STRING_STAMPED, QOS_LATCHED)
CAMERA = Topic("/surgisim/camera/image_raw", msg.IMAGE, QOS_SENSOR)
CAMERA_INFO = Topic("/surgisim/camera/camera_info", msg.CAMERA_INFO, QOS_SENSOR)  # beside each image, as ROS does
# A tracker's needle pose in the arm's base frame; best effort, so that either kind of writer matches.
NEEDLE = Topic("/surgisim/needle/measured_cp", msg.POSE_STAMPED, QOS_SENSOR)
SCENE = Topic("/surgisim/scene", msg.STRING, QOS_LATCHED)  # the episode's layout, as a scene file holds it
LESION = Topic("/surgisim/lesion/measured_cp", msg.POINT_STAMPED, QOS_SENSOR)  # a tracked lesion's position
# Where the runner takes each of a task's ``robot_inputs`` from (``surgisim.envs.tasks.base.ROBOT_INPUTS``).
SUPPLIED_INPUTS = {"goal": GOAL.name, "needle": NEEDLE.name, "layout": f"{SCENE.name} or --scene FILE",
                   "lesion": LESION.name}  # fmt: skip
SPIN_WAIT = 0.05  # s: the longest a loop waits for messages before it checks its stop flag and deadline


def scene_document(task: str, layout: dict[str, Any]) -> dict[str, Any]:
    """A scene file's content: the task, and its layout in the task's world frame (m, rad)."""
    return {"task": task, "frame": "world", "layout": layout}


def scene_layout(document: Any, task: str, source: str) -> dict[str, Any]:
    """The layout in a scene document, checked to be for ``task``; a ``ValueError`` naming ``source``."""
    if not isinstance(document, dict) or not isinstance(document.get("layout"), dict):
        raise ValueError(f"{source}: a scene is a mapping with 'task', 'frame' and a 'layout' mapping")
    if document.get("task") != task or document.get("frame") != "world":
        raise ValueError(f"{source}: the scene is for task {excerpt(document.get('task'))} in frame "
                         f"{excerpt(document.get('frame'))}; this run needs task {task!r}, frame 'world'")  # fmt: skip
    return document["layout"]
