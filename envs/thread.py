"""Suture thread: a chain of short links tied to the needle's tail.

The thread is ``THREAD_LINKS`` straight links of fixed length. It is quasi-static, which suits
a light thread over 0.1 s steps: each step, the free parts sag under gravity onto the tissue
and the chain is re-solved from its pins with follow-the-leader passes (FABRIK between two
pins), which keep every link at its length. The pins are the needle's tail (particle 0) and,
once the tail has been pulled through them, the holes in the tissue. Thread slides through a
hole only when pulled taut: the length between the tail and the first hole grows to the
straight distance between them and never shrinks. The links are rendered as thin boxes.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from surgisim.envs.camera import Camera, SegLabel
from surgisim.envs.sim import Sim

THREAD_LINKS = 24
LINK_LENGTH = 0.0035  # 8.4 cm of thread
THREAD_LENGTH = THREAD_LINKS * LINK_LENGTH
THREAD_RADIUS = 0.0004
THREAD_RGBA = (0.35, 0.2, 0.6, 1.0)  # violet, like braided polyglactin
SAG = 0.004  # metres a free particle drops per step before the chain is re-solved
PASSES = 3


def _toward(start: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The point one link from ``start`` towards ``point``, not below the tissue surface."""
    delta = np.array([point[0], point[1], max(point[2], THREAD_RADIUS)]) - start
    length = float(np.linalg.norm(delta))
    step = start + (delta / length if length > 1e-12 else np.array([0.0, 0.0, -1.0])) * LINK_LENGTH
    step[2] = max(step[2], THREAD_RADIUS)
    return step


class Thread:
    """The thread's particles, the holes it runs through, and its rendered links."""

    def __init__(self, sim: Sim, camera: Camera) -> None:
        self.sim = sim
        self.links = []
        for index in range(THREAD_LINKS):
            name = f"thread{index}"
            extents = [LINK_LENGTH / 2 + THREAD_RADIUS, THREAD_RADIUS, THREAD_RADIUS]
            body = sim.create_body(name, visual=("box", {"halfExtents": extents}), collision=None, rgba=THREAD_RGBA)
            camera.set_label(body, SegLabel.THREAD)
            self.links.append(name)
        self.points = np.zeros((THREAD_LINKS + 1, 3))
        self.holes: list[np.ndarray] = []  # holes the thread runs through, nearest the tail first
        self.through = 0.0  # thread length (m) from the tail to the first hole

    def lay_out(self, anchor: np.ndarray, direction: np.ndarray) -> None:
        """Reset the thread straight from ``anchor`` along ``direction``, through no hole."""
        direction = direction / np.linalg.norm(direction)
        self.points = anchor + LINK_LENGTH * np.arange(THREAD_LINKS + 1)[:, None] * direction
        self.holes, self.through = [], 0.0
        self.step(anchor)

    def pass_through(self, hole: np.ndarray, anchor: np.ndarray) -> None:
        """The tail has just been pulled through ``hole``: the thread runs through it from now on."""
        self.holes.insert(0, np.array(hole, dtype=np.float64))
        self.through = float(np.linalg.norm(anchor - hole))

    def step(self, anchor: np.ndarray) -> None:
        """Re-solve the chain for the tail at ``anchor``."""
        if self.holes:
            self.through = min(max(self.through, float(np.linalg.norm(anchor - self.holes[0]))), THREAD_LENGTH)
        pins = [(0, anchor)]
        along = self.through
        for index, hole in enumerate(self.holes):
            if index > 0:
                along += float(np.linalg.norm(hole - self.holes[index - 1]))
            pins.append((min(round(along / LINK_LENGTH), THREAD_LINKS), hole))
        self.points[1:, 2] -= SAG
        for (first, start), (last, end) in itertools.pairwise(pins):
            self._between(first, start, last, end)
        last, end = pins[-1]
        self.points[last] = end
        for index in range(last + 1, THREAD_LINKS + 1):  # the free end, led from the last pin
            self.points[index] = _toward(self.points[index - 1], self.points[index])
        self._place_links()

    def _between(self, first: int, start: np.ndarray, last: int, end: np.ndarray) -> None:
        """Chain particles ``first``..``last`` between two pins (straight when taut)."""
        if last <= first:
            return
        if np.linalg.norm(end - start) >= (last - first) * LINK_LENGTH:
            self.points[first : last + 1] = np.linspace(start, end, last - first + 1)
            return
        for _ in range(PASSES):  # FABRIK: lead from each pin in turn
            self.points[first] = start
            for index in range(first + 1, last + 1):
                self.points[index] = _toward(self.points[index - 1], self.points[index])
            self.points[last] = end
            for index in range(last - 1, first - 1, -1):
                self.points[index] = _toward(self.points[index + 1], self.points[index])
        self.points[first] = start
        self.points[first + 1 : last, 2] = np.maximum(self.points[first + 1 : last, 2], THREAD_RADIUS)

    def _place_links(self) -> None:
        starts, ends = self.points[:-1], self.points[1:]
        axes = ends - starts
        axes /= np.maximum(np.linalg.norm(axes, axis=1, keepdims=True), 1e-12)
        # Shortest-arc quaternions (x, y, z, w) turning the box's x axis onto each link.
        quats = np.column_stack([np.zeros(len(axes)), -axes[:, 2], axes[:, 1], 1.0 + axes[:, 0]])
        quats[axes[:, 0] < -0.9999] = [0.0, 0.0, 1.0, 0.0]
        quats /= np.linalg.norm(quats, axis=1, keepdims=True)
        for name, centre, quat in zip(self.links, (starts + ends) / 2, quats, strict=True):
            self.sim.set_base_pose(name, centre, quat)

    def get_state(self) -> dict[str, Any]:
        return {"points": self.points.copy(), "holes": [hole.copy() for hole in self.holes], "through": self.through}

    def set_state(self, state: dict[str, Any]) -> None:
        self.points = np.array(state["points"])
        self.holes = [np.array(hole) for hole in state["holes"]]
        self.through = float(state["through"])
        self._place_links()
