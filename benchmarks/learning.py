"""Learning benchmark: env steps and wall time until a trained policy first reaches its target.

Run: ``python benchmarks/learning.py [--benchmarks NeedleReach ...] [--seeds 0 1] [--root runs/bench]``.
Each (benchmark, seed) trains with the task's configured algorithm and budget into its own run
folder (evaluating every ``eval_freq`` steps on seeded episodes; demonstration benchmarks first
record 100 expert episodes), then prints one table row: the first evaluation at or above the
target (with a cost rate at or below the limit, where there is one): env steps, and wall seconds
since training started; the final evaluation; the whole run's wall time.

Then, per benchmark, the results over its seeds as deep-RL evaluation should report them: final
success as an interquartile mean with a 95 % bootstrap interval (``surgisim.agents.stats``,
rliable's definitions), and the steps to the target of each seed. Use 5 seeds or more
(``--seeds 0 1 2 3 4``); for many runs at once, ``surgisim sweep`` trains them on Ray.

``--summarise RUN_DIR ...`` prints the rows of finished runs (of ``surgisim train`` with the
same settings, a sweep's included) instead of training. Not run in CI.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from surgisim.agents.demos import record_demos
from surgisim.agents.stats import bootstrap_ci, iqm
from surgisim.agents.train import train

DEMO_EPISODES = 100


@dataclass(frozen=True)
class Benchmark:
    task: str
    algo: str
    target: float  # success rate
    cost_max: float | None = None  # largest cost (collision) rate allowed at the target
    demos: bool = False
    obs_mode: str = "state"

    @property
    def env_id(self) -> str:
        return f"surgisim/{self.task}-v0"


# The learning goals of the project.
BENCHMARKS = {
    "NeedleReach": Benchmark("NeedleReach", "sac", 0.95),
    "NavigateAnatomy-demos": Benchmark("NavigateAnatomy", "sac", 0.9, cost_max=0.05, demos=True),
    "EndoscopeTrack": Benchmark("EndoscopeTrack", "sac", 0.9),
    "NeedlePick-demos": Benchmark("NeedlePick", "sac", 0.9, demos=True),
    "NeedleInsert-demos": Benchmark("NeedleInsert", "sac", 0.9, demos=True),
    "NeedleHandover-demos": Benchmark("NeedleHandover", "sac", 0.9, demos=True),
    "EndoscopeTrack-pixels": Benchmark("EndoscopeTrack", "ppo", 0.8, obs_mode="rgbd"),
}
HEADER = (f"{'benchmark':22s} {'algo':4s} {'seed':>4s} {'target':>6s} {'cost max':>8s} {'steps to':>8s} "
          f"{'wall s to':>9s} {'steps':>7s} {'final':>5s} {'cost':>5s} {'wall s':>7s}  run")  # fmt: skip


def run_benchmark(name: str, seed: int, root: Path) -> Path:
    bench = BENCHMARKS[name]
    demos = None
    if bench.demos:
        demos = root / "demos" / f"{bench.task}-expert-seed{seed}"
        if not demos.exists():
            record_demos(bench.env_id, demos, "expert", DEMO_EPISODES, seed)
    run_dir = root / f"{name}-{bench.algo}-seed{seed}-{int(time.time())}"
    train(bench.env_id, bench.algo, seed=seed, obs_mode=bench.obs_mode, run_dir=run_dir, demos=demos)
    return run_dir


def identify(settings: dict) -> str:
    """The benchmark a run's settings belong to."""
    for name, bench in BENCHMARKS.items():
        wanted = (bench.env_id, bench.algo, bench.obs_mode, bench.demos)
        if wanted == (settings["env_id"], settings["algo"], settings["obs_mode"], settings.get("demos") is not None):
            return name
    raise ValueError(f"no benchmark for {settings['env_id']} with {settings['algo']} on {settings['obs_mode']}")


def _cost_ok(evaluation: dict[str, str], bench: Benchmark) -> bool:
    return bench.cost_max is None or float(evaluation["cost_rate"]) <= bench.cost_max


def result(run_dir: Path) -> tuple[str, str, float, str]:
    """The run's benchmark, its table row, its final success and its steps to the target."""
    settings = yaml.safe_load((run_dir / "config.yaml").read_text())
    name = identify(settings)
    bench = BENCHMARKS[name]
    with (run_dir / "eval.csv").open() as handle:
        evals = list(csv.DictReader(handle))
    reached = next((r for r in evals if float(r["success_rate"]) >= bench.target and _cost_ok(r, bench)), None)
    steps_to, wall_to = (reached["timesteps"], reached["wall_s"]) if reached else ("-", "-")
    last = evals[-1]
    cost_max = f"{bench.cost_max:.2f}" if bench.cost_max is not None else "-"
    line = (f"{name:22s} {bench.algo:4s} {settings['seed']:4d} {bench.target:6.2f} {cost_max:>8s} {steps_to:>8s} "
            f"{wall_to:>9s} {int(last['timesteps']):7d} {float(last['success_rate']):5.2f} "
            f"{float(last['cost_rate']):5.2f} {float(last['wall_s']):7.0f}  {run_dir}")  # fmt: skip
    return name, line, float(last["success_rate"]), steps_to


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", nargs="+", default=["NeedleReach"], choices=list(BENCHMARKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--root", type=Path, default=Path("runs/bench"))
    parser.add_argument("--summarise", nargs="+", type=Path, metavar="RUN_DIR", help="rows of finished runs")
    args = parser.parse_args()
    runs = args.summarise or [run_benchmark(name, seed, args.root) for name in args.benchmarks for seed in args.seeds]
    results = [result(run_dir) for run_dir in runs]
    print(HEADER)
    for _, line, _, _ in results:
        print(line)
    print(f"\n{'benchmark':22s} {'seeds':>5s} {'final success IQM':>17s} {'95% CI':>13s}  steps to target per seed")
    for name in dict.fromkeys(name for name, _, _, _ in results):
        finals = [final for other, _, final, _ in results if other == name]
        low, high = bootstrap_ci(finals)
        steps = ";".join(steps for other, _, _, steps in results if other == name)
        print(f"{name:22s} {len(finals):5d} {iqm(finals):17.2f} {f'[{low:.2f}, {high:.2f}]':>13s}  {steps}")


if __name__ == "__main__":
    main()
