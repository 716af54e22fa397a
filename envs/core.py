"""``SurgicalEnv``: the one Gymnasium environment class, parametrised by a task.

The env card of each task (its action and observation tables, rewards, start state and episode
end) is the docstring of the task class in ``surgisim/envs/tasks/``. Common to all tasks:

Arguments
    task: a task name from ``surgisim.envs.tasks.REGISTRY`` (set by the registered id).
    obs_mode: ``"state"`` (default), ``"rgb"``, ``"rgbd"``, ``"rgb_seg"`` or ``"all"``; image modes
        add endoscope images to the observation dict. ``"robot"``: only what a robot has (below).
    image_size: side of the square observation images in pixels (default 84).
    reward_type: ``"sparse"`` (default) or ``"dense"``.
    control: ``"cartesian"`` (default) or ``"joint"``.
    action_frame: frame of cartesian tip motion, ``"camera"`` (default; the endoscope view, as on a
        surgeon console) or ``"world"`` (the table frame, z up).
    render_mode: ``None`` or ``"rgb_array"`` (the endoscope view at ``render_size`` pixels).
    render_size: side of the ``rgb_array`` frames in pixels (default 256).
    renderer: ``"tiny"`` (default, CPU TinyRenderer) or ``"egl"`` (used only if available; falls
        back to TinyRenderer with a warning).
    tool: the PSMs' instrument, a shipped dVRK tool name or a dVRK tool file's path (default
        ``LARGE_NEEDLE_DRIVER_400006``; see ``surgisim.envs.tools``). The tip the tasks score is
        the jaw tips, 10.2 mm past the pose a dVRK reports.
    randomize: domain randomisation groups, ``None`` (default), ``"all"`` or some of
        ``"appearance,kinematics,control,observation"`` (see ``surgisim.envs.randomization``).
    randomize_config: the YAML of randomisation ranges (default: the package's
        ``configs/randomize.yaml``; copy and edit it).
    tip_zoom: with ``obs_mode="robot"``, also ``tip_rgb``: the endoscope image magnified this many
        times (1-16) around where the first driven arm reports its tip (default ``None``: no such view).

Actions, all in [-1, 1], one block per driven arm in the task's order
    PSM, cartesian (5): tip translation (x, y, z) of up to 5 mm per step, a roll of the tool about
    its jaw axis of up to 0.1 rad, and the jaw angle (-1 is -20 degrees, 1 is 80 degrees). Tasks
    that need the whole wrist (``Task.wrist == "full"``) take a rotation vector (3, up to 0.1 rad,
    in the action frame) instead of the roll: 7 numbers.
    PSM, joint (7): changes of the six joints (0.05 rad, or 5 mm for the insertion) and the jaw angle.
    ECM, cartesian (4): camera translation (x, y, z) of up to 5 mm and a roll of up to 0.1 rad;
    the camera always looks along its shaft, through the RCM. ECM, joint (4): joint changes.
    Joint limits always apply. A non-finite or complex action or one of the wrong shape raises
    ``ValueError`` and changes nothing. After ``close``, every method but ``close`` raises
    ``RuntimeError``.

Observation (a dict; HER-ready)
    ``observation`` (float32): each driven arm's state (PSM: tip position, tip rotation as 6-D,
    jaw; ECM: camera position and rotation as 6-D), then the task's features. ``achieved_goal``
    and ``desired_goal`` (float32): see the task. Image modes add ``rgb`` (H, W, 3), ``depth``
    (H, W, 1; see ``surgisim.envs.camera.depth_to_metres``) and ``seg`` (H, W, 1; labels in
    ``surgisim.envs.camera.SegLabel``), all uint8, from the endoscope.
    ``obs_mode="robot"``, what a deployed policy can have on a real arm, and nothing else: ``rgb``
    (the endoscope image), ``state`` (float32: each driven arm's state as the arm reports it, from its
    joints, with the observation noise) and, for tasks that take a goal from an operator, ``goal``
    (float32, the goal position, m). No pose of needle, tissue, anatomy or lesion, and no true arm
    pose: under kinematic errors the reported state is where the joints say the tip is. With
    ``tip_zoom``, ``tip_rgb`` (H, W, 3): the camera turned towards the reported tip, as the camera's
    model (the ECM's joints) places it, its field of view ``tip_zoom`` times narrower; a robot cuts
    it from a finer camera image (``surgisim.envs.camera.magnified``). Where the jaws and the needle
    really are shows in it, a few millimetres off its centre under kinematic errors.

Info
    ``is_success`` (bool), ``distance_mm`` (goal distance in mm) and ``cost`` (safety cost of
    the step, e.g. a contact with anatomy); tasks add theirs (e.g. ``damage_mm``,
    ``contact_depth_mm``, ``contact_force_n``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from surgisim.envs.appearance import through_the_endoscope
from surgisim.envs.controllers import make_controller
from surgisim.envs.documents import is_number
from surgisim.envs.randomization import Disturbances, Episode, Randomizer
from surgisim.envs.scene import TISSUE, Endoscope, Scene
from surgisim.envs.sim import RENDERERS
from surgisim.envs.tasks import REGISTRY
from surgisim.envs.tasks.base import Task
from surgisim.envs.tasks.inputs import Goal
from surgisim.envs.tools import DEFAULT_TOOL, load_tool
from surgisim.envs.transforms import rotation_vector

OBS_MODES = {  # each mode's images
    "state": (),
    "rgb": ("rgb",),
    "rgbd": ("rgb", "depth"),
    "rgb_seg": ("rgb", "seg"),
    "all": ("rgb", "depth", "seg"),
    "robot": ("rgb",),  # with the arms' reported state and an operator's goal only
}
REWARD_TYPES = ("sparse", "dense")
CONTROLS = ("cartesian", "joint")
ACTION_FRAMES = ("camera", "world")
RENDER_MODES = (None, "rgb_array")


def _checked_zoom(zoom: Any, obs_mode: str) -> float | None:
    """``tip_zoom`` as a float, or a ``ValueError`` saying what it may be."""
    if zoom is None:
        return None
    if obs_mode != "robot":
        raise ValueError(f"tip_zoom={zoom!r} adds the magnified tip view to what a robot has; use obs_mode='robot'")
    if not is_number(zoom) or not 1.0 <= float(zoom) <= 16.0:
        raise ValueError(f"tip_zoom={zoom!r} is not supported; use a number from 1 to 16, or None")
    return float(zoom)


def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; use one of {', '.join(repr(a) for a in allowed)}")


class SurgicalEnv(gym.Env):
    """A dVRK surgical task in PyBullet with endoscope camera observations (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        task: str = "NeedleReach",
        obs_mode: str = "state",
        image_size: int = 84,
        reward_type: str = "sparse",
        control: str = "cartesian",
        action_frame: str = "camera",
        render_mode: str | None = None,
        renderer: str = "tiny",
        render_size: int = 256,
        tool: str = DEFAULT_TOOL,
        randomize: str | None = None,
        randomize_config: str | None = None,
        tip_zoom: float | None = None,
    ) -> None:
        _check_choice("task", task, tuple(REGISTRY))
        _check_choice("obs_mode", obs_mode, tuple(OBS_MODES))
        _check_choice("reward_type", reward_type, REWARD_TYPES)
        _check_choice("control", control, CONTROLS)
        _check_choice("action_frame", action_frame, ACTION_FRAMES)
        _check_choice("render_mode", render_mode, RENDER_MODES)
        _check_choice("renderer", renderer, RENDERERS)
        for name, size in (("image_size", image_size), ("render_size", render_size)):
            if not isinstance(size, int | np.integer) or isinstance(size, bool) or not 16 <= size <= 1024:
                raise ValueError(f"{name}={size!r} is not supported; use an integer from 16 to 1024")
        self.tip_zoom = _checked_zoom(tip_zoom, obs_mode)
        self._init_kwargs = dict(
            task=task, obs_mode=obs_mode, image_size=int(image_size), reward_type=reward_type, control=control,
            action_frame=action_frame, render_mode=render_mode, renderer=renderer, render_size=int(render_size),
            tool=str(tool), randomize=randomize, randomize_config=randomize_config, tip_zoom=self.tip_zoom,
        )  # fmt: skip
        self.randomizer = Randomizer(randomize, randomize_config)
        self.episode = Episode()
        self._randomizer_rng: np.random.Generator | None = None
        self.disturbances = Disturbances()
        self.obs_mode, self.image_size, self.reward_type = obs_mode, int(image_size), reward_type
        self.control, self.action_frame, self.render_mode = control, action_frame, render_mode
        self.render_size = int(render_size)
        self.metadata = {**self.metadata}  # per instance, not the shared class dict
        self.task_name = task  # its key in the registry
        self.task: Task = REGISTRY[task].task()
        if self.tip_zoom is not None and self.task.arms[0] == "ecm":
            raise ValueError(f"tip_zoom={self.tip_zoom:g}: {task} drives the endoscope itself, so there is no "
                             "instrument tip to magnify; leave tip_zoom out")  # fmt: skip
        self.scene = Scene(renderer, load_tool(str(tool)))
        self.endoscope = Endoscope(self.scene)
        self.task.build(self.scene)
        self.arms = [self.scene.arms[name] for name in self.task.arms]
        self._has_reset = False
        self.controllers = [
            make_controller(arm, control, self.task.wrist, self._action_frame, self.task.workspace) for arm in self.arms
        ]
        sizes = [controller.size for controller in self.controllers]
        self._action_slices = [slice(end - size, end) for size, end in zip(sizes, np.cumsum(sizes), strict=True)]
        self.action_space = gym.spaces.Box(-1.0, 1.0, (sum(sizes),), np.float32)
        self._reset_arms()
        self.task.reset(self.scene, np.random.default_rng(0))  # fixes the observation sizes
        example = self._state_obs()
        goal_space = gym.spaces.Box(-np.inf, np.inf, example["achieved_goal"].shape, np.float32)
        spaces: dict[str, gym.spaces.Space] = {
            "observation": gym.spaces.Box(-np.inf, np.inf, example["observation"].shape, np.float32),
            "achieved_goal": goal_space,
            "desired_goal": goal_space,
        }
        channels = {"rgb": 3, "depth": 1, "seg": 1}
        for key in OBS_MODES[obs_mode]:
            spaces[key] = gym.spaces.Box(0, 255, (self.image_size, self.image_size, channels[key]), np.uint8)
        self._state_size = sum(len(arm.state()) for arm in self.arms)  # the reported arm states' part
        self._takes_goal = Goal in self.task.robot_inputs
        robot = obs_mode == "robot"
        self.observation_space = (self.robot_observation_space(self.image_size, self.tip_zoom) if robot
                                  else gym.spaces.Dict(spaces))  # fmt: skip

    # -- episode ---------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self._check_open()
        super().reset(seed=seed)
        if seed is not None or self._randomizer_rng is None:
            # Its own stream from the same seed, so that randomising leaves the task's draws alone.
            self._randomizer_rng = np.random.default_rng(self.np_random.bit_generator.seed_seq.spawn(1)[0])
        if self.randomizer.groups:
            self._set_episode(self.randomizer.episode(self._randomizer_rng, self.scene.arms))
        self._reset_arms()
        self.task.failed = False
        self.task.reset(self.scene, self.np_random)
        self._has_reset = True
        observation = self._observation()
        return self._shown(observation), self._info(observation, cost=0.0)

    def _set_episode(self, episode: Episode) -> None:
        self.episode = episode
        self.scene.set_look(episode.look)
        for name, arm in self.scene.arms.items():
            arm.set_error(episode.arm_errors.get(name))
        self.disturbances.pending = []

    def _reset_arms(self) -> None:
        for arm in self.scene.arms.values():
            arm.reset()

    def _action_frame(self) -> np.ndarray:
        """The rotation of the frame cartesian actions are given in, now."""
        return self.scene.ecm.model_tip_pose()[:3, :3] if self.action_frame == "camera" else np.eye(3)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        self._check_open()
        hold = self._hold_action
        self._apply(*self.disturbances.executed(self._validated(action), hold, self.episode, self._randomizer_rng))
        observation, info = self._advance()
        reward = float(self.compute_reward(observation["achieved_goal"], observation["desired_goal"], info))
        terminated = bool(self.task.terminate_on_success and info["is_success"])
        return self._shown(observation), reward, terminated, False, info

    def set_points(self, action: Any) -> list[tuple[np.ndarray, float | None]]:
        """What ``step`` would move each driven arm to, without moving it: its world tip
        pose (4x4) and jaw angle (None without a jaw). The ROS 2 bridge turns a policy's action into
        set-points for a robot so, with no inverse kinematics (the robot applies its joint limits)."""
        self._check_open()
        action = self._validated(action)
        return [controller.set_point(action[part]) for controller, part in zip(self.controllers, self._action_slices,
                                                                               strict=True)]  # fmt: skip

    def advance(self, world: bool = True) -> tuple[dict, dict]:
        """Advance the task's world by one step from the arms as they are (set by ``step``, or by
        a robot's commands in the ROS 2 sim twin); returns the observation and info. ``world=False``:
        the arms have moved, the world has not (a twin ticking faster than the env's control
        period advances its world once per period)."""
        observation, info = self._advance(world)
        return self._shown(observation), info

    def _advance(self, world: bool = True) -> tuple[dict, dict]:
        self._check_open()
        if world:
            self.task.step_world(self.scene)
        observation = self._observation()
        return observation, self._info(observation, self.task.cost(self.scene))

    def move_to(self, set_points: list[tuple[np.ndarray, float | None]]) -> tuple[dict, dict]:
        """Move each driven arm's tip to a set-point (a world pose, and a jaw angle or None) as its
        controller would (inverse kinematics, joint limits), then advance the world as ``step``
        does, so that contact acts as it does on an action (anatomy stops the instrument, tissue
        resists the needle). A surgeon's replay moves the arms so. Returns the observation and info."""
        self._check_open()
        if len(set_points) != len(self.arms):
            raise ValueError(f"{len(set_points)} set-points for the {len(self.arms)} arms {self.task.arms}")
        for arm, (pose, jaw) in zip(self.arms, set_points, strict=True):
            turn = rotation_vector(pose[:3, :3] @ arm.model_tip_pose()[:3, :3].T)
            arm.move_tip(pose[:3, 3], turn)
            if jaw is not None and arm.has_jaw:
                arm.set_jaw(jaw)
        return self.advance()

    def clearances(
        self, margin: float, arm: str | None = None, tissue: bool = False
    ) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """Where the driven arms (or the one named ``arm``) come within ``margin`` (m) of the
        task's obstacles (organs, vessels) and, with ``tissue``, the tissue bed: (distance, negative
        when they interpenetrate; the point on the obstacle; its normal, towards the arm) each."""
        self._check_open()
        names = [arm] if arm is not None else [driven.name for driven in self.arms]
        bodies = [*self.task.obstacles(), *([TISSUE] if tissue else [])]
        sim = self.scene.sim
        return [point for name in names for body in bodies for point in sim.closest_points(name, body, margin)]

    def set_goal(self, position: Any) -> None:
        """Put the task's goal at a world position (m), as an operator chooses it on a robot (the
        ROS 2 bridge takes it from a topic). A ``ValueError`` for a position that is not three
        finite numbers, or a task whose goal is not a position; nothing changes then."""
        self._check_open()
        goal = np.asarray(position, dtype=np.float64)
        if goal.shape != (3,) or not np.all(np.isfinite(goal)):
            raise ValueError(f"a goal is a position of 3 finite numbers (m), not {position!r}")
        self.task.set_goal(self.scene, goal)

    def layout(self) -> dict[str, Any]:
        """The episode's fixed scenery (anatomy, tissue marks; ``Task.layout_keys``), world frame."""
        self._check_open()
        return self.task.layout()

    def set_layout(self, layout: dict[str, Any]) -> None:
        """Put the scenery where ``layout`` (as ``layout()`` gives it) says, as a robot's scene file
        does; a ``ValueError`` names what is wrong, and nothing changes then."""
        self._check_open()
        self.task.set_layout(self.scene, layout)

    def observe(self) -> dict[str, np.ndarray]:
        """The observation of the current state, nothing moved."""
        self._check_open()
        return self._shown(self._observation())

    def _check_open(self) -> None:
        if self.scene.sim.closed:
            raise RuntimeError("this env is closed; make a new one with gymnasium.make")

    def _validated(self, action: Any) -> np.ndarray:
        size = self.action_space.shape[0]
        try:
            array = np.asarray(action)
            if np.iscomplexobj(array):
                raise TypeError(f"it holds complex numbers: {array.tolist()}")
            array = array.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"action must be an array of {size} real numbers: {error}") from None
        if array.shape != self.action_space.shape:
            raise ValueError(
                f"action has shape {array.shape}, expected {self.action_space.shape} for "
                f"control={self.control!r} on {', '.join(self.task.arms)}; nothing was applied"
            )
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise ValueError(f"action has NaN or inf at index {bad.tolist()}: {array.tolist()}; nothing was applied")
        return np.clip(array, -1.0, 1.0)

    def _apply(self, action: np.ndarray, motion_scale: float = 1.0) -> None:
        for controller, part in zip(self.controllers, self._action_slices, strict=True):
            controller.apply(action[part], motion_scale)

    def _hold_action(self) -> np.ndarray:
        """The action that keeps every driven arm where it is."""
        return np.concatenate([controller.hold() for controller in self.controllers])

    def action_toward(
        self,
        position: np.ndarray,
        jaw: float = 0.0,
        roll: float = 0.0,
        arm: int = 0,
        rotation: np.ndarray | None = None,
    ) -> np.ndarray:
        """The action for driven arm number ``arm`` (its slice of the action; all of it for a
        one-arm task), in this env's control mode, that moves its tip in a straight line towards
        a world ``position`` and turns it by ``roll`` radians about its axis, or by the world
        ``rotation`` vector (at most one step's worth of each), setting its jaw to ``jaw``
        radians. Scripted experts use it."""
        return self.controllers[arm].action_toward(position, jaw, roll, rotation)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """Reward for (batches of) goals; vectorised over the last axis for HER relabelling."""
        return self.task.compute_reward(achieved_goal, desired_goal, info, self.reward_type)

    # -- observations ----------------------------------------------------------------------------

    def _state_obs(self) -> dict[str, np.ndarray]:
        return {
            "observation": np.concatenate(
                [*(arm.state() for arm in self.arms), self.task.observation(self.scene)]
            ).astype(np.float32),
            "achieved_goal": self.task.achieved_goal(self.scene).astype(np.float32),
            "desired_goal": self.task.desired_goal(self.scene).astype(np.float32),
        }

    def _observation(self) -> dict[str, np.ndarray]:
        observation, episode, rng = self._state_obs(), self.episode, self._randomizer_rng
        observation["observation"] = self.disturbances.observed(observation["observation"], episode, rng)
        keys = OBS_MODES[self.obs_mode]
        if keys:
            images = self.scene.render(self.image_size, depth="depth" in keys, seg="seg" in keys)
            images = through_the_endoscope(images, self.scene.look.fov_deg, episode.lens_distortion_k1,
                                           episode.blur_sigma_px, episode.image_noise_std, rng)  # fmt: skip
            observation.update({key: images[key] for key in keys})
        if self.tip_zoom is not None:
            view = {"rgb": self.scene.render_magnified(self.image_size, self.tip_direction(), self.tip_zoom)}
            view = through_the_endoscope(view, self.scene.look.fov_deg, 0.0, episode.blur_sigma_px,
                                         episode.image_noise_std, rng)  # fmt: skip
            observation["tip_rgb"] = view["rgb"]
        return observation

    def tip_direction(self) -> np.ndarray:
        """Where the first driven arm reports its tip, seen from where the ECM reports the camera:
        a direction in the camera's frame (both from joints, as a robot knows them)."""
        camera = self.scene.ecm.model_tip_pose()
        return camera[:3, :3].T @ (self.arms[0].model_tip_pose()[:3, 3] - camera[:3, 3])

    def privileged_observation(self) -> dict[str, np.ndarray]:
        """The state mode's observation, noise-free, whatever the ``obs_mode``: the task's features
        (needle, tissue, anatomy, lesion), achieved and desired goal. What a teacher sees in
        training (a scripted expert, a state policy); a robot has none of it."""
        self._check_open()
        return self._state_obs()

    def _shown(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What the env gives a policy of the whole observation: all of it, or in the ``robot``
        mode what a robot has."""
        if self.obs_mode != "robot":
            return observation
        return self.as_a_robot_has(observation, observation["rgb"], observation.get("tip_rgb"))

    def robot_observation_space(self, image_size: int, tip_zoom: float | None = None) -> gym.spaces.Dict:
        """The ``robot`` mode's observation space with ``image_size`` images (and the magnified one
        with a ``tip_zoom``), whatever this env's mode."""
        image = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        spaces = {"rgb": image, "state": gym.spaces.Box(-np.inf, np.inf, (self._state_size,), np.float32)}
        if self._takes_goal:
            spaces["goal"] = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        if tip_zoom is not None:
            spaces["tip_rgb"] = image
        return gym.spaces.Dict(spaces)

    def as_a_robot_has(self, observation: dict[str, np.ndarray], rgb: np.ndarray,
                       tip_rgb: np.ndarray | None = None) -> dict[str, np.ndarray]:  # fmt: skip
        """The ``robot`` mode's observation of a whole one (any mode) and an endoscope image: the
        image, the arms' reported state, for a task that takes one the operator's goal, and the
        magnified view when given. The ROS 2 bridge gives a vision policy this, from the camera
        topic's image."""
        shown = {"rgb": rgb, "state": observation["observation"][: self._state_size]}
        if self._takes_goal:
            shown["goal"] = observation["desired_goal"][:3]
        if tip_rgb is not None:
            shown["tip_rgb"] = tip_rgb
        return shown

    def _info(self, observation: dict[str, np.ndarray], cost: float) -> dict[str, Any]:
        achieved, desired = observation["achieved_goal"], observation["desired_goal"]
        return {
            "is_success": bool(self.task.is_success(achieved, desired)) and not self.task.failed,
            "distance_mm": float(self.task.distance(achieved, desired) * 1000.0),
            "cost": float(cost),
            **self.task.extra_info(self.scene),
        }

    def render(self) -> np.ndarray | None:
        self._check_open()
        if self.render_mode != "rgb_array":
            return None
        return self.scene.render(self.render_size)["rgb"]

    # -- state -----------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """A picklable snapshot of the episode (arms and task), restored with ``set_state``."""
        return {
            "joints": {name: arm.q.copy() for name, arm in self.scene.arms.items()},
            "jaws": {name: arm.jaw for name, arm in self.scene.arms.items() if arm.has_jaw},
            "task": self.task.get_state(),
            "has_reset": self._has_reset,
            "randomization": {"episode": self.episode, "pending": [a.copy() for a in self.disturbances.pending]},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._set_episode(state["randomization"]["episode"])
        self.disturbances.pending = [np.array(a) for a in state["randomization"]["pending"]]
        for name, q in state["joints"].items():
            self.scene.arms[name].set_joints(q)
        for name, jaw in state["jaws"].items():
            self.scene.arms[name].set_jaw(jaw)
        self.task.set_state(self.scene, state["task"])
        self._has_reset = state["has_reset"]

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments the env was made with, as ``SurgicalEnv`` takes them again."""
        return dict(self._init_kwargs)

    def __getstate__(self) -> dict[str, Any]:
        rng_state = self._np_random.bit_generator.state if self._np_random is not None else None
        randomizer_rng = self._randomizer_rng.bit_generator.state if self._randomizer_rng is not None else None
        return {"init_kwargs": self._init_kwargs, "state": self.get_state(), "rng_state": rng_state,
                "randomizer_rng": randomizer_rng}  # fmt: skip

    def __setstate__(self, pickled: dict[str, Any]) -> None:
        self.__init__(**pickled["init_kwargs"])
        self.set_state(pickled["state"])
        if pickled["rng_state"] is not None:
            self._np_random = np.random.Generator(np.random.PCG64())
            self._np_random.bit_generator.state = pickled["rng_state"]
        if pickled["randomizer_rng"] is not None:
            self._randomizer_rng = np.random.Generator(np.random.PCG64())
            self._randomizer_rng.bit_generator.state = pickled["randomizer_rng"]

    def close(self) -> None:
        self.scene.close()
