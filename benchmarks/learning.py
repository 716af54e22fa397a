"""Learning benchmark: env steps and wall time until a trained policy first reaches its target.

Run: ``python benchmarks/learning.py [--tasks NeedleReach ...] [--seeds 0 1] [--root runs/bench]``.
Each (task, seed) trains with the task's configured algorithm and budget into its own run folder
(evaluating every ``eval_freq`` steps on seeded episodes), then prints one table row: the first
evaluation at or above the target (env steps, and wall seconds since training started), the
final success rate and the whole run's wall time. Not run in CI.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from surgisim.agents.train import train

# task: (algorithm, success target) — the targets are the learning goals of the project.
TARGETS = {
    "NeedleReach": ("sac", 0.95),
    "NavigateAnatomy": ("sac", 0.9),
    "EndoscopeTrack": ("sac", 0.9),
    "NeedlePick": ("sac", 0.9),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=["NeedleReach"], choices=sorted(TARGETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--root", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()
    rows = []
    for task in args.tasks:
        algo, target = TARGETS[task]
        for seed in args.seeds:
            run_dir = args.root / f"{task}-{algo}-seed{seed}-{int(time.time())}"
            start = time.perf_counter()
            train(f"surgisim/{task}-v0", algo, seed=seed, run_dir=run_dir, progress_bar=False)
            wall = time.perf_counter() - start
            with (run_dir / "eval.csv").open() as handle:
                evals = [
                    (int(r["timesteps"]), float(r["success_rate"]), float(r["wall_s"])) for r in csv.DictReader(handle)
                ]
            reached = next(((steps, seconds) for steps, success, seconds in evals if success >= target), ("-", "-"))
            rows.append((task, algo, seed, target, *reached, evals[-1][0], evals[-1][1], wall, run_dir))
    print(f"\n{'task':16s} {'algo':5s} {'seed':>4s} {'target':>6s} {'steps to':>8s} {'wall to':>7s} {'steps':>7s} "
          f"{'final':>6s} {'wall s':>7s}  run")  # fmt: skip
    for task, algo, seed, target, steps_to, wall_to, steps, final, wall, run_dir in rows:
        print(f"{task:16s} {algo:5s} {seed:4d} {target:6.2f} {steps_to:>8} {wall_to:>7} {steps:7d} {final:6.2f} "
              f"{wall:7.0f}  {run_dir}")  # fmt: skip


if __name__ == "__main__":
    main()
