"""Sweeps over seeds and hyperparameters on Ray: ``surgisim sweep ENV --seeds N --grid key=v1,v2``.

Every trial is an ordinary ``surgisim train`` run folder under the sweep's folder
(``<Task>-<algo>-<point>-seed<S>``), trained through Ray Tune: on an embedded local Ray by
default (one trial per ``cpus_per_trial`` cores), on a running cluster when an ``address`` is
given (``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on the others, the
same surgisim installed on each, the sweep folder on storage they share). ``sweep.yaml`` records
the sweep; run again with ``resume``, each trial continues its run folder from its last
checkpoint (a finished one is only counted). At the end, ``summary.csv`` and ``curves.png`` give,
per grid point, success over the seeds as an interquartile mean with a 95 % bootstrap interval
(``surgisim.agents.stats``) and the steps each seed took to reach the target.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from surgisim.agents.config import load_config, read_yaml, validate
from surgisim.agents.files import atomic_write, check_writable, plot_curves
from surgisim.agents.stats import bootstrap_ci, iqm
from surgisim.envs import task_name

SPEC = "sweep.yaml"


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["learning_rate=0.001,0.0003", "batch_size=128"]`` as {key: values}, values read as YAML."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, equals, values = item.partition("=")
        if not equals or not key or not values:
            raise ValueError(f"--grid {item!r}: give KEY=VALUE[,VALUE...]")
        grid[key] = [yaml.safe_load(value) for value in values.split(",")]
    return grid


def _points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = [{}]
    for key, values in grid.items():
        points = [{**point, key: value} for point in points for value in values]
    return points


def _label(point: dict[str, Any]) -> str:
    text = "-".join(f"{key}{value}" for key, value in point.items()) or "default"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def _trial(config: dict[str, Any]) -> None:
    """One run, in a Ray worker: trains (or resumes) its run folder and reports its final success."""
    from ray import tune

    from surgisim.agents.train import train

    config = config["trial"]
    run_dir = Path(config["run_dir"])
    if (run_dir / "config.yaml").exists():
        train(config["env_id"], resume=run_dir, progress_bar=False)
    else:
        demos = Path(config["demos"]) if config["demos"] else None
        train(config["env_id"], config["algo"], steps=config["steps"], seed=config["seed"],
              config_file=Path(config["config_file"]), run_dir=run_dir, progress_bar=False, demos=demos)  # fmt: skip
    rows = _evaluations(run_dir)
    tune.report({"success_rate": rows[-1][1], "timesteps": rows[-1][0]})


def _evaluations(run_dir: Path) -> list[tuple[int, float]]:
    with (run_dir / "eval.csv").open(newline="") as handle:
        return [(int(row["timesteps"]), float(row["success_rate"])) for row in csv.DictReader(handle)]


def sweep(env_id: str, folder: Path, algo: str = "sac", seeds: int = 5, grid: dict[str, list[Any]] | None = None,
          steps: int | None = None, config_file: Path | None = None, address: str | None = None,
          cpus_per_trial: float = 1.0, target: float = 0.9, resume: bool = False,
          demos: Path | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Run the sweep (see the module docstring); returns the summary rows."""
    import ray
    from ray import tune

    folder = Path(os.path.abspath(folder))
    if resume:
        spec = read_yaml(folder / SPEC, "sweep")
        if spec["env_id"] != env_id:
            raise ValueError(f"{folder} is a sweep of {spec['env_id']}, not {env_id}")
    else:
        folder = check_writable(folder, "sweep folder")
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(f"{folder} already holds a sweep; pass --resume {folder} or choose another folder")
        spec = {"env_id": env_id, "algo": algo, "seeds": seeds, "grid": grid or {}, "steps": steps,
                "target": target, "cpus_per_trial": cpus_per_trial,
                "demos": str(Path(demos).resolve()) if demos is not None else None}  # fmt: skip
        base = load_config(algo, env_id, config_file)
        configs = folder / "configs"
        configs.mkdir(parents=True)
        for point in _points(spec["grid"]):
            hyper = {**base, **point}
            validate(hyper, f"--grid {_label(point)}", algo)
            (configs / f"{_label(point)}.yaml").write_text(yaml.safe_dump({env_id: hyper}))
        (folder / SPEC).write_text(yaml.safe_dump(spec))
    trials = [{"env_id": spec["env_id"], "algo": spec["algo"], "seed": seed, "steps": spec["steps"],
               "demos": spec.get("demos"),
               "config_file": str(folder / "configs" / f"{_label(point)}.yaml"), "point": _label(point),
               "run_dir": str(folder / f"{task_name(spec['env_id'])}-{spec['algo']}-{_label(point)}-seed{seed}")}
              for point in _points(spec["grid"]) for seed in range(spec["seeds"])]  # fmt: skip
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(_trial, {"cpu": spec["cpus_per_trial"]}),
            param_space={"trial": tune.grid_search(trials)},
            run_config=tune.RunConfig(name="tune", storage_path=str(folder), verbose=0),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    failed = [result for result in results if result.error is not None]
    rows = summarise(folder, spec, trials)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(trials)} trials failed (first: {failed[0].error}); their run "
                           f"folders are in {folder}: continue with --resume {folder}")  # fmt: skip
    return rows


def summarise(folder: Path, spec: dict[str, Any], trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``summary.csv`` and ``curves.png`` from the trials' run folders."""
    rows, curves = [], {}
    for point in dict.fromkeys(trial["point"] for trial in trials):
        runs = [Path(trial["run_dir"]) for trial in trials if trial["point"] == point]
        evaluations = [_evaluations(run) for run in runs if (run / "eval.csv").exists()]
        finals = np.array([evaluated[-1][1] for evaluated in evaluations])
        reached = [next((str(steps) for steps, success in evaluated if success >= spec["target"]), "-")
                   for evaluated in evaluations]  # fmt: skip
        low, high = bootstrap_ci(finals)
        rows.append({"point": point, "seeds": len(evaluations), "final_success_iqm": iqm(finals), "ci_low": low,
                     "ci_high": high, "steps_to_target": ";".join(reached)})  # fmt: skip
        curves[point] = evaluations

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["point"])
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(folder / "summary.csv", write)
    plot_curves(curves, folder / "curves.png", f"{spec['env_id']} ({spec['algo']}): success over seeds")
    return rows
