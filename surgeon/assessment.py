"""The surgeon pipeline as an API: ``assess(trajectory, task, assists, options)`` replays a
trajectory in a task scene without assistance, with it and the reference policy's own episode,
measures every metric and returns an ``Assessment``; ``write_report(assessment, folder)`` writes
what ``surgisim assess`` leaves in its report folder. The command only parses its arguments.

    from surgisim.surgeon import assessment, assist, readers
    trajectory = readers.read_trajectory("assets/trajectories/navigate_novice.csv")
    result = assessment.assess(trajectory, "surgisim/NavigateAnatomy-v0", assist.parse_assists("fixture"))
    result.summary["scorecard"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from surgisim.envs.tools import DEFAULT_TOOL
from surgisim.surgeon import report
from surgisim.surgeon.assist import Assist, Context
from surgisim.surgeon.metrics import METRICS, Metric, measure
from surgisim.surgeon.replay import Registration, Replay, replay, rollout
from surgisim.surgeon.trajectory import Trajectory

WRITER = report.WRITER


@dataclass
class Options:
    """How to assess: the reference policy (``expert``, ``pretrained``, a ``.onnx`` or run folder,
    or ``none``), the policy that the ``policy`` assistance shares control with, the shield's
    limits file, the task's episode (``seed``), how the trajectory is placed in the scene, the
    instrument, the endoscope videos' side in pixels (0: none) and the metrics."""

    reference: str = "expert"
    policy: str = "expert"
    limits: Path | None = None
    seed: int = 0
    registration: Registration = field(default_factory=Registration)
    tool: str = DEFAULT_TOOL
    video_size: int = 256
    metrics: list[Metric] = field(default_factory=lambda: list(METRICS))


@dataclass
class Assessment:
    """What an assessment found: the ``summary`` (``metrics.json``: every metric per variant, the
    scorecard, interventions, unreachable spans, notes), each variant's replay, the reference's
    tip path (world, m) and the endoscope's pinhole matrix at the video size."""

    summary: dict[str, Any]
    runs: dict[str, Replay]
    reference_path: np.ndarray | None
    camera_matrix: np.ndarray | None
    metrics: list[Metric]


def assess(trajectory: Trajectory, task: str, assists: list[Assist], options: Options | None = None) -> Assessment:
    """Replay ``trajectory`` in ``task`` (an env id) unassisted, with ``assists`` in order (when
    any) and the reference policy's episode; a ``ValueError`` says why the inputs cannot be
    assessed (nothing is written)."""
    options = options or Options()
    reference = None if options.reference == "none" else rollout(task, options.reference, options.seed, options.tool)
    path = None if reference is None else next(iter(reference.arms.values())).positions
    env = gym.make(task, tool=options.tool)
    try:
        model = env.unwrapped
        for assist in assists:
            assist.prepare(Context(env, path, options.policy, options.limits))
        runs = {"unassisted": replay(env, trajectory, [], options.seed, options.registration, options.video_size)}
        if assists:
            runs["assisted"] = replay(env, trajectory, assists, options.seed, options.registration, options.video_size)
        if reference is not None:
            runs["reference"] = replay(env, reference, [], options.seed, Registration("absolute"), options.video_size)
        spans, end = runs["unassisted"].unreachable, runs["unassisted"].times[-1]
        if spans and spans[0][0] == 0.0 and spans[0][1] >= end:
            raise ValueError(f"{trajectory.source}: no part of it is reachable by {task}'s arm after registration "
                             f"({options.registration.mode}); try --register relative or --scale")  # fmt: skip
        matrix = model.endoscope.intrinsics(options.video_size) if options.video_size else None
    finally:
        env.close()
    values = {variant: measure(run, path, options.metrics) for variant, run in runs.items()}
    summary: dict[str, Any] = {
        "writer": WRITER, "task": task, "trajectory": trajectory.source,
        "assist": ",".join(assist.describe() for assist in assists), "reference": options.reference,
        "seed": options.seed, "registration": options.registration.mode, "scale": options.registration.scale,
        "duration_s": trajectory.duration, "metrics": values,
        "interventions": _interventions(runs["assisted"]) if "assisted" in runs else {},
        "unreachable": {variant: run.unreachable for variant, run in runs.items()},
        "notes": runs["unassisted"].notes, "scorecard": report.scorecard(values, options.metrics),
    }  # fmt: skip
    return Assessment(summary, runs, path, matrix, options.metrics)


def _interventions(replay: Replay, active: float = 1e-4) -> dict[str, dict[str, float]]:
    """Per assistance: its mean and largest correction (mm) and how long it acted (s)."""
    step = float(np.median(np.diff(replay.times))) if len(replay.times) > 1 else 0.0
    return {name: {"mean_mm": float(c.mean() * 1000), "max_mm": float(c.max(initial=0.0) * 1000),
                   "active_s": float(np.count_nonzero(c > active) * step)}
            for name, c in replay.corrections.items()}  # fmt: skip


def write_report(assessment: Assessment, folder: Path) -> None:
    """``metrics.json``, ``metrics.csv``, a WebM per variant (with a video size) and
    ``report.html`` into ``folder``."""
    report.write_tables(folder, assessment.summary)
    videos = {}
    if assessment.camera_matrix is not None:
        for variant, run in assessment.runs.items():
            videos[variant] = folder / f"{variant}.webm"
            frames = report.annotate(run, assessment.reference_path, variant, assessment.camera_matrix)
            report.write_video(frames, videos[variant])
    report.write_html(folder, assessment.summary, report.plots(assessment.runs), videos)
