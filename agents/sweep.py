"""Sweeps over seeds and hyperparameters on Ray: ``surgisim sweep ENV --seeds N --grid key=v1,v2``.

Every trial is an ordinary ``surgisim train`` run folder under the sweep's folder
(``<Task>-<algo>-<point>-seed<S>``), trained through Ray Tune: on an embedded local Ray by
default (one trial per ``cpus_per_trial`` cores), on a running cluster when an ``address`` is
given (``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on the others, the
same surgisim installed on each, the sweep folder on storage they share). ``sweep.yaml`` records
the sweep; run again with ``resume``, each trial continues its run folder from its last
checkpoint (a finished one is only counted), with the sweep's own settings (only where it runs,
``address`` and ``cpus_per_trial``, may change). When every trial has finished, ``summary.csv``
and ``curves.png`` give, per grid point, success over the seeds as an interquartile mean with a
95 % bootstrap interval (``surgisim.agents.stats``) and the steps each seed took to the target.

What fails, fails early and leaves nothing: a grid, config or cluster that cannot be used is an
error before the sweep folder is written (a cluster that cannot be reached within
``CONNECT_TIMEOUT_S``; ``cpus_per_trial`` more than any of its machines has). Ctrl-C stops every
trial (each keeps its last checkpoint), writes no summary and raises ``KeyboardInterrupt`` with
the resume command.
"""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from surgisim.agents.config import ALGORITHM_NAMES, is_positive_int, is_positive_number, load_config, validate
from surgisim.agents.curves import plot_curves, read_evaluations
from surgisim.agents.stats import bootstrap_ci, iqm
from surgisim.envs import env_ids, task_name
from surgisim.envs.documents import excerpt, is_number, parse_yaml, read_yaml, shorten
from surgisim.envs.files import atomic_write, check_writable, refuse_links, remove

SPEC = "sweep.yaml"
CONFIGS = "configs"
# What a sweep writes in its folder besides its run folders (Ray Tune's records go to tune/).
SWEEP_PARTS = (SPEC, CONFIGS, "tune", "summary.csv", "curves.png")
CONNECT_TIMEOUT_S = 60.0
DEFAULTS = {"algo": "sac", "seeds": 5, "target": 0.9, "cpus_per_trial": 1.0}


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["learning_rate=0.001,3e-4", "net_arch=[64,64],[256,256]"]`` as {key: values}: the values
    are read as one YAML flow list (numbers as YAML 1.2 reads them); a key given twice or a value
    given twice is an error."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, equals, values = item.partition("=")
        if not equals or not key or not values:
            raise ValueError(f"--grid {excerpt(item)}: give KEY=VALUE[,VALUE...]")
        if key in grid:
            raise ValueError(f"--grid: {key} is given twice; give its values once, KEY=V1,V2")
        parsed = parse_yaml(f"[{values}]", f"--grid {excerpt(item)}", "list of values")
        twice = [value for index, value in enumerate(parsed) if value in parsed[:index]]
        if twice:
            raise ValueError(f"--grid {key}: {excerpt(twice[0])} is given twice; each value makes one set of runs")
        grid[key] = parsed
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
    rows = read_evaluations(run_dir / "eval.csv")[1:]
    if not rows:
        raise ValueError(f"{run_dir / 'eval.csv'}: holds no evaluation")
    return [(int(row[0]), float(row[1])) for row in rows]


def _check_spec(spec: Any, path: Path) -> dict[str, Any]:
    """A ``ValueError`` naming the file unless ``spec`` is a sweep record as ``sweep`` writes it."""
    checks = {
        "env_id": lambda v: v in env_ids(),
        "algo": lambda v: v in ALGORITHM_NAMES,
        "seeds": is_positive_int,
        "grid": lambda v: isinstance(v, dict) and all(isinstance(x, list) and x for x in v.values()),
        "steps": lambda v: v is None or is_positive_int(v),
        "target": lambda v: is_number(v) and 0 <= v <= 1,
        "cpus_per_trial": is_positive_number,
        "demos": lambda v: v is None or isinstance(v, str),
    }
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: not a sweep record (a mapping of {', '.join(checks)})")
    for key, check in checks.items():
        if key not in spec or not check(spec[key]):
            raise ValueError(f"{path}: {key} is missing or not valid ({excerpt(spec.get(key))}); not a sweep record")
    return spec


def _resumed_spec(folder: Path, env_id: str, asked: dict[str, Any]) -> dict[str, Any]:
    """The sweep's record, once what ``asked`` gives (None: not given) is found to agree with it."""
    spec = _check_spec(read_yaml(folder / SPEC, "sweep record"), folder / SPEC)
    if spec["env_id"] != env_id:
        raise ValueError(f"{folder} is a sweep of {spec['env_id']}, not {env_id}")
    if asked.pop("config_file") is not None:
        raise ValueError(f"{folder} resumes with its own configs ({folder / CONFIGS}); leave out --config")
    if asked["demos"] is not None:
        asked["demos"] = str(Path(asked["demos"]).resolve())
    for key, value in asked.items():
        if value is not None and value != spec[key]:
            flag = f"--{key.replace('_', '-')}"
            raise ValueError(f"{folder} was started with {key} {excerpt(spec[key])}, not {excerpt(value)}; a sweep "
                             f"resumes as it started: leave out {flag} or start a new sweep")  # fmt: skip
    return spec


def _trials(folder: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"env_id": spec["env_id"], "algo": spec["algo"], "seed": seed, "steps": spec["steps"],
             "demos": spec.get("demos"), "config_file": str(folder / CONFIGS / f"{_label(point)}.yaml"),
             "point": _label(point),
             "run_dir": str(folder / f"{task_name(spec['env_id'])}-{spec['algo']}-{_label(point)}-seed{seed}")}
            for point in _points(spec["grid"]) for seed in range(spec["seeds"])]  # fmt: skip


def _point_configs(spec: dict[str, Any], config_file: Path | None) -> dict[str, str]:
    """Each grid point's hyperparameter file (name: YAML text), every point checked."""
    base = load_config(spec["algo"], spec["env_id"], config_file)
    configs = {}
    for point in _points(spec["grid"]):
        label = _label(point)
        if f"{label}.yaml" in configs:
            raise ValueError(f"--grid: two grid points share the name {label}; give values that differ in their text")
        validate({**base, **point}, f"--grid {label}", spec["algo"])
        configs[f"{label}.yaml"] = yaml.safe_dump({spec["env_id"]: {**base, **point}})
    return configs


def _check_reachable(address: str) -> None:
    """A ``ValueError`` unless a Ray cluster answers at ``address`` within ``CONNECT_TIMEOUT_S``
    (Ray itself retries an unreachable address for minutes). Tried from a child process, which
    is killed if it hangs."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if colon and port.isdigit():  # a closed port answers at once; only an open one needs Ray's own probe
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except OSError as error:
            raise ValueError(f"cannot reach a Ray cluster at {address} ({error.strerror or error}); start one with "
                             "ray start --head, or leave out --address for a local Ray") from None  # fmt: skip
    probe = "import sys, ray; ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False)"
    try:
        result = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True,
                                timeout=CONNECT_TIMEOUT_S)  # fmt: skip
    except subprocess.TimeoutExpired:
        reason = f"no answer within {CONNECT_TIMEOUT_S:.0f} s"
    else:
        if result.returncode == 0:
            return
        lines = [line for line in result.stderr.splitlines() if "Error" in line] or result.stderr.splitlines()[-1:]
        reason = shorten(lines[-1].strip() if lines else f"exit status {result.returncode}", 200)
    raise ValueError(f"cannot reach a Ray cluster at {address} ({reason}); start one with ray start --head, or "
                     "leave out --address for a local Ray")  # fmt: skip


def _start_ray(address: str | None, cpus_per_trial: float) -> None:
    """Connect to the cluster at ``address`` (or start a local Ray) and check that a trial fits
    on one of its machines; Ray is shut down again if not."""
    import ray

    if address:
        _check_reachable(address)
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    largest = max((node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node["Alive"]), default=0.0)
    if cpus_per_trial > largest:
        ray.shutdown()
        raise ValueError(f"--cpus-per-trial {cpus_per_trial:g}: the largest machine of the Ray cluster has "
                         f"{largest:g} CPUs, so no trial could start; ask for at most {largest:g}")  # fmt: skip


def sweep(env_id: str, folder: Path, algo: str | None = None, seeds: int | None = None,
          grid: dict[str, list[Any]] | None = None, steps: int | None = None, config_file: Path | None = None,
          address: str | None = None, cpus_per_trial: float | None = None, target: float | None = None,
          resume: bool = False, demos: Path | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Run the sweep (see the module docstring); returns the summary rows. Settings left as None
    take ``DEFAULTS`` in a new sweep and the sweep's own on ``resume``."""
    import ray

    if cpus_per_trial is not None and not is_positive_number(cpus_per_trial):
        raise ValueError(f"--cpus-per-trial {excerpt(cpus_per_trial)}: a positive number of cores")
    if target is not None and not 0 <= target <= 1:
        raise ValueError(f"--target {target:g}: a success rate from 0 to 1")
    folder = Path(os.path.abspath(folder))
    if resume:
        asked = {"algo": algo, "seeds": seeds, "grid": grid, "steps": steps, "target": target, "demos": demos,
                 "config_file": config_file}  # fmt: skip
        spec = _resumed_spec(folder, env_id, asked)
        trials = _trials(folder, spec)
        refuse_links([folder / name for name in (*SWEEP_PARTS, *(Path(t["run_dir"]).name for t in trials))], "sweep")
        configs: dict[str, str] = {}
    else:
        folder = check_writable(folder, "sweep folder")
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise FileExistsError(f"{folder} already holds a sweep; pass --resume {folder} or choose another folder")
        spec = {"env_id": env_id, "algo": algo or DEFAULTS["algo"], "seeds": seeds or DEFAULTS["seeds"],
                "grid": grid or {}, "steps": steps, "target": DEFAULTS["target"] if target is None else target,
                "cpus_per_trial": cpus_per_trial or DEFAULTS["cpus_per_trial"],
                "demos": str(Path(demos).resolve()) if demos is not None else None}  # fmt: skip
        configs = _point_configs(spec, config_file)
        trials = _trials(folder, spec)
    cpus = cpus_per_trial or spec["cpus_per_trial"]  # where it runs may change on resume
    _start_ray(address, cpus)
    try:
        if configs:  # a new sweep: written only now that everything it needs is known to work
            _write_new(folder, spec, configs)
        results = _fit(folder, trials, cpus)
    except KeyboardInterrupt:
        resume_command = f"surgisim sweep {task_name(env_id)} --resume {folder}"
        raise KeyboardInterrupt(f"the sweep stopped; its runs keep their last checkpoints and no summary was "
                                f"written; continue with: {resume_command}") from None  # fmt: skip
    finally:
        ray.shutdown()
    failed = [result for result in results if result.error is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(trials)} trials failed (first: {failed[0].error}); no summary was "
                           f"written; their run folders are in {folder}: continue with --resume {folder}")  # fmt: skip
    return summarise(folder, spec, trials)


def _write_new(folder: Path, spec: dict[str, Any], configs: dict[str, str]) -> None:
    """The new sweep's record and configs; what was written is removed again if writing fails."""
    existed = folder.exists()
    try:
        (folder / CONFIGS).mkdir(parents=True)
        for name, text in configs.items():
            (folder / CONFIGS / name).write_text(text)
        (folder / SPEC).write_text(yaml.safe_dump(spec))
    except BaseException:
        remove(folder / CONFIGS)
        remove(folder / SPEC)
        if not existed:
            folder.rmdir()
        raise


def _fit(folder: Path, trials: list[dict[str, Any]], cpus_per_trial: float) -> Any:
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C is ours: Tune's handler would end it with rc 0
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(_trial, {"cpu": cpus_per_trial}),
        param_space={"trial": tune.grid_search(trials)},
        run_config=tune.RunConfig(name="tune", storage_path=str(folder), verbose=0),
    )
    return tuner.fit()


def summarise(folder: Path, spec: dict[str, Any], trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``summary.csv`` and ``curves.png`` from the trials' run folders."""
    rows, curves = [], {}
    for point in dict.fromkeys(trial["point"] for trial in trials):
        runs = [Path(trial["run_dir"]) for trial in trials if trial["point"] == point]
        evaluations = [_evaluations(run) for run in runs]
        finals = np.array([evaluated[-1][1] for evaluated in evaluations])
        reached = [next((str(steps) for steps, success in evaluated if success >= spec["target"]), "-")
                   for evaluated in evaluations]  # fmt: skip
        low, high = bootstrap_ci(finals)
        rows.append({"point": point, "seeds": len(evaluations), "final_success_iqm": iqm(finals), "ci_low": low,
                     "ci_high": high, "target": spec["target"], "steps_to_target": ";".join(reached)})  # fmt: skip
        curves[point] = evaluations

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["point"])
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(folder / "summary.csv", write)
    plot_curves(curves, folder / "curves.png", f"{spec['env_id']} ({spec['algo']}): success over seeds")
    return rows
