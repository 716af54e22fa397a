"""``surgisim assess TRAJECTORY --task TASK``: replay a surgeon's trajectory with and without
assistance and write a scorecard, plots and annotated videos (see ``surgisim assess --help``).

The ``surgisim`` command finds ``add_commands`` through the ``surgisim.commands`` entry point;
its modules need the ``surgeon`` extra (scipy, matplotlib, OpenCV, rosbags).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from surgisim.envs.arguments import env_id_type, seed_type
from surgisim.envs.files import check_writable, remove, remove_stale, staging_prefix, unprivate
from surgisim.envs.tools import DEFAULT_TOOL
from surgisim.envs.transforms import make_pose, rotation_from_vector
from surgisim.surgeon.assessment import WRITER, Options, assess, write_report
from surgisim.surgeon.assist import ASSISTS, parse_assists
from surgisim.surgeon.readers import read_trajectory
from surgisim.surgeon.replay import Registration


def _ours(folder: Path) -> bool:
    """Whether ``folder`` holds only a report this command wrote."""
    try:
        summary = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    allowed = {"metrics.json", "metrics.csv", "report.html"}
    names = {entry.name for entry in folder.iterdir()}
    return summary.get("writer") == WRITER and names - allowed <= {n for n in names if n.endswith(".webm")}


def _transform(values: list[float] | None, mode: str) -> np.ndarray | None:
    """``--transform X Y Z RX RY RZ`` as a 4x4 pose (m, rotation vector in rad)."""
    if values is None:
        return None
    if mode != "absolute":
        raise ValueError("--transform places a trajectory's poses: give --register absolute too")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"--transform {values}: six finite numbers (x, y, z in m, a rotation vector in rad)")
    return make_pose(rotation_from_vector(np.array(values[3:])), np.array(values[:3]))


def _assess(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """The pipeline (``surgisim.surgeon.assessment``) on the parsed arguments, written into ``folder``."""
    assists = parse_assists(args.assist)
    registration = Registration(args.register, _transform(args.transform, args.register), args.scale)
    trajectory = read_trajectory(args.trajectory, args.format, args.tool)
    options = Options(args.reference, args.policy, args.limits, args.seed, registration, args.tool, args.video_size)
    assessment = assess(trajectory, args.task, assists, options)
    write_report(assessment, folder)
    return assessment.summary


def _check_extra() -> None:
    """The surgeon extra's packages, or a one-line error saying how to install them."""
    missing = [name for name in ("scipy", "matplotlib", "cv2", "rosbags") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"surgisim assess needs {', '.join(missing)}: pip install -e \".[surgeon]\" "
                         "(with -c constraints.txt on a CPU-only machine)")  # fmt: skip


def cmd_assess(args: argparse.Namespace) -> int:
    _check_extra()
    out = check_writable(args.out, "report folder")
    if out.exists() and not (args.force and out.is_dir() and _ours(out)):
        why = "--force replaces only a report surgisim assess wrote" if args.force else "give --force to replace it"
        raise ValueError(f"{out} exists; {why}")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    folder = Path(tempfile.mkdtemp(prefix=staging_prefix(out), dir=out.parent))
    started = time.monotonic()
    try:
        summary = _assess(args, folder)
        unprivate(folder)
        if out.exists():
            remove(out)
        os.replace(folder, out)
    finally:
        if folder.exists():
            remove(folder)
    print(f"{summary['task']}  {Path(summary['trajectory']).name}  assist={summary['assist'] or 'none'}  "
          f"({time.monotonic() - started:.0f} s)")  # fmt: skip
    for row in summary["scorecard"]:
        values = "  ".join(f"{variant}={_text(value)}" for variant, value in row["values"].items())
        print(f"  {row['label']:<38s} {values}" + (f" {row['unit']}" if row["unit"] else ""))
    print(f"report: {out / 'report.html'}")
    return 0


def _text(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def add_commands(commands: Any) -> None:
    """Add ``surgisim assess`` to the ``surgisim`` parser's subcommands."""
    parser = commands.add_parser("assess", help="replay a surgeon's trajectory with and without assistance; "
                                 "scorecard, plots and videos in one page")  # fmt: skip
    parser.add_argument("trajectory", type=Path, help="a .csv, a JIGSAWS .txt, a rosbag2 folder or .mcap, or "
                        "waypoints .yaml (formats: surgisim.surgeon.readers)")  # fmt: skip
    parser.add_argument("--task", required=True, type=env_id_type, help="the scene, e.g. NavigateAnatomy")
    parser.add_argument("--assist", default="fixture,tremor",
                        help=f"comma-separated, applied in order: {', '.join(ASSISTS)}, or none; settings as "
                             "fixture:margin=0.005 (default: fixture,tremor)")  # fmt: skip
    parser.add_argument("--reference", default="expert", help="the policy whose rollout is the reference: expert "
                        "(default), pretrained, a .onnx or run folder, or none")  # fmt: skip
    parser.add_argument("--policy", default="expert", help="the policy the 'policy' assistance shares control with")
    parser.add_argument("--limits", type=Path, help="shield limits YAML for the 'shield' assistance")
    parser.add_argument("--seed", type=seed_type, default=0, help="the task's episode (its layout)")
    parser.add_argument("--format", default="auto", choices=("auto", "csv", "jigsaws", "waypoints", "bag"))
    parser.add_argument("--register", default="relative", choices=("relative", "absolute"),
                        help="relative: the motion from the first pose, from where the task starts the arm "
                             "(default); absolute: the poses where the file says")  # fmt: skip
    parser.add_argument("--transform", nargs=6, type=float, metavar=("X", "Y", "Z", "RX", "RY", "RZ"),
                        help="with --register absolute: then move the poses by this (m, rotation vector)")  # fmt: skip
    parser.add_argument("--scale", type=float, default=1.0, help="scale of the trajectory's positions (registration)")
    parser.add_argument("--tool", default=DEFAULT_TOOL, help="the instrument (for bags' measured_cp and the scene)")
    parser.add_argument("--video-size", type=int, default=256, help="endoscope video side in pixels (0: no video)")
    parser.add_argument("--out", type=Path, default=Path("assessment"), help="report folder to create")
    parser.add_argument("--force", action="store_true", help="replace a report folder surgisim assess wrote")
    parser.set_defaults(run=cmd_assess)


if __name__ == "__main__":
    from surgisim.agents.cli import main

    sys.exit(main(["assess", *sys.argv[1:]]))
