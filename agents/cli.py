"""The ``surgisim`` command: list environments, evaluate policies, run a demo with a video."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import surgisim.envs
from surgisim.agents.config import ALGORITHM_NAMES, export_rl_zoo, is_rl_zoo_export
from surgisim.agents.demos import record_demos
from surgisim.agents.evaluate import evaluate
from surgisim.agents.pretrained import available
from surgisim.envs import task_name
from surgisim.envs.arguments import (
    env_id_type,
    fraction,
    non_negative_int,
    non_negative_number,
    positive_int,
    positive_number,
    seed_type,
)
from surgisim.envs.core import CONTROLS, OBS_MODES
from surgisim.envs.documents import DocumentError, parse_yaml
from surgisim.envs.files import VIDEO_SUFFIXES, check_writable, free_path, video_writer

# Packages add their own subcommands here (``add(commands)`` on the subparsers), as ros2 CLI
# extensions do: the ROS 2 bridge adds ``surgisim ros`` without this module importing it.
COMMANDS_GROUP = "surgisim.commands"

DEFAULT_ENV = "surgisim/NeedleReach-v0"


def _env_kwarg(text: str) -> tuple[str, Any]:
    """``key=value``, the value read as YAML (``control=joint``, ``image_size=64``)."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key, parse_yaml(value, f"--env-kwargs {key}", "value")
    except DocumentError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _print_metrics(metrics: dict) -> None:
    print(f"{metrics['env_id']}  policy={metrics['policy']}  episodes={metrics['episodes']}  seed={metrics['seed']}")
    for key in ("success_rate", "mean_episode_length", "mean_return", "mean_final_distance_mm", "cost_rate"):
        print(f"  {key:24s} {metrics[key]:.3f}")


def cmd_envs(args: argparse.Namespace) -> int:
    for env_id in surgisim.envs.env_ids():
        print(f"{env_id:32s} {surgisim.envs.describe(env_id)}")
    return 0


def _randomization(args: argparse.Namespace) -> dict[str, Any]:
    """The env arguments of ``--randomize`` and ``--randomize-config``."""
    return {"randomize": args.randomize, "randomize_config": args.randomize_config}


def cmd_evaluate(args: argparse.Namespace) -> int:
    env_kwargs = {"obs_mode": args.obs_mode, "control": args.control, **_randomization(args)}
    if args.video is None:
        metrics = evaluate(args.env_id, args.policy, args.episodes, args.seed, env_kwargs)
    else:
        path = free_path(check_writable(Path(args.video), "video", VIDEO_SUFFIXES))
        env_kwargs.update(render_mode="rgb_array", render_size=args.video_size)
        with video_writer(path, fps=10) as append:
            metrics = evaluate(args.env_id, args.policy, args.episodes, args.seed, env_kwargs, on_frame=append)
        print(f"video of the endoscope view: {path}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(metrics))
    else:
        _print_metrics(metrics)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    name = args.env_id.removeprefix("surgisim/")
    path = Path(args.out) if args.out else Path("surgisim-demo") / f"{name}-seed{args.seed}.mp4"
    path = free_path(check_writable(path, "video", VIDEO_SUFFIXES))
    env_kwargs = {"render_mode": "rgb_array", "render_size": args.video_size, **_randomization(args)}
    policy = args.policy or ("pretrained" if args.env_id in available() else "expert")  # the best there is
    with video_writer(path, fps=10) as append:
        metrics = evaluate(args.env_id, policy, args.episodes, args.seed, env_kwargs, on_frame=append)
    _print_metrics(metrics)
    print(f"video of the endoscope view: {path}")
    return 0


def cmd_demos_record(args: argparse.Namespace) -> int:
    env_kwargs = {"image_size": args.image_size, **_randomization(args)}
    path = record_demos(args.env_id, args.out, args.policy, args.episodes, args.seed, args.obs_mode, args.force,
                        env_kwargs)  # fmt: skip
    print(f"wrote {args.episodes} episodes of {args.env_id} ({args.policy}, obs_mode={args.obs_mode}) to {path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from surgisim.agents.train import train  # torch and SB3: loaded only to train

    run = train(
        args.env_id,
        args.algo,
        steps=args.steps,
        seed=args.seed,
        obs_mode=args.obs_mode,
        run_dir=args.run_dir,
        resume=args.resume,
        her=args.her,
        config_file=args.config,
        demos=args.demos,
        n_envs=args.n_envs,
        device=args.device,
        torch_threads=args.torch_threads,
        extra_env_kwargs=dict(args.env_kwargs or []),
    )
    print(f"run folder: {run}")
    return 0


def cmd_teach(args: argparse.Namespace) -> int:
    from surgisim.agents.dagger import Schedule, teach  # torch and SB3: loaded only to teach

    schedule = Schedule(rounds=args.rounds, episodes=args.episodes, epochs=args.epochs, shift=args.shift,
                        switch_weight=args.switch_weight)  # fmt: skip
    randomize = None if args.randomize == "none" else args.randomize
    run = teach(
        args.env_id,
        args.teacher,
        schedule,
        args.seed,
        args.image_size,
        randomize,
        args.run_dir,
        extractor=args.extractor,
        tip_zoom=args.tip_zoom,
    )
    print(f"run folder: {run} (evaluate it with: surgisim evaluate {task_name(args.env_id)} --policy {run})")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("ray") is None:
        raise ValueError(
            'surgisim sweep needs Ray: pip install -e ".[scale]" (with -c constraints.txt on a CPU machine)'
        )
    from surgisim.agents.sweep import parse_grid, sweep  # ray: loaded only to sweep

    if args.resume is not None and args.out is not None and args.out.resolve() != args.resume.resolve():
        raise ValueError(f"--out {args.out} and --resume {args.resume} name two folders; a sweep resumes in its own")
    folder = args.resume or args.out or Path("sweeps") / f"{task_name(args.env_id)}-{args.algo or 'sac'}"
    grid = parse_grid(args.grid) if args.grid else None
    try:
        rows = sweep(args.env_id, folder, args.algo, args.seeds, grid, args.steps, args.config, args.address,
                     args.cpus_per_trial, args.target, resume=args.resume is not None, demos=args.demos)  # fmt: skip
    except RuntimeError as error:  # trials failed: the others' results are in the folder
        print(f"surgisim: {error}", file=sys.stderr)
        return 1
    target = rows[0]["target"]  # every row has the sweep's
    print(f"{'point':32s} {'seeds':>5s} {'success IQM':>11s} {'95% CI':>13s}  steps to {target:g} per seed")
    for row in rows:
        interval = f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
        print(f"{row['point']:32s} {row['seeds']:5d} {row['final_success_iqm']:11.2f} {interval:>13s}  "
              f"{row['steps_to_target']}")  # fmt: skip
    print(f"sweep folder: {Path(folder).resolve()} (summary.csv, curves.png, a run folder per trial)")
    return 0


def cmd_export_config(args: argparse.Namespace) -> int:
    out = check_writable(Path(args.out), "hyperparameter file", (".yml", ".yaml"))
    if out.exists() or out.is_symlink():
        if not args.force:
            raise ValueError(f"{out} exists; give --force to replace it")
        if out.is_symlink() or not is_rl_zoo_export(out):
            raise ValueError(f"{out} is not a file that surgisim export-config wrote; --force replaces only those. "
                             "Choose another --out (nothing was changed)")  # fmt: skip
    ids = args.envs or surgisim.envs.env_ids()
    dropped = export_rl_zoo(args.algo, ids, out)
    print(f"wrote {out}: {len(ids)} env ids for rl_zoo3 --algo {args.algo} (left out: {', '.join(dropped) or 'none'})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from surgisim.agents.export import export_onnx  # torch and onnx: loaded only to export

    print(f"wrote {export_onnx(args.run_dir, args.out, args.force)}")
    return 0


def _add_rollout_arguments(parser: argparse.ArgumentParser) -> None:
    """Which env, policy and seeded episodes to roll out."""
    parser.add_argument("env_id", type=env_id_type)
    parser.add_argument(
        "--policy", default="expert", help="expert, pretrained, vision, a run folder, a model .zip or a policy .onnx"
    )
    parser.add_argument("--episodes", type=positive_int, default=100)
    parser.add_argument("--seed", type=seed_type, default=0, help="episode i is reset with seed S + i")
    parser.add_argument("--obs-mode", default="state", choices=tuple(OBS_MODES))


def _add_randomization_arguments(parser: argparse.ArgumentParser) -> None:
    groups = "all, or some of appearance,kinematics,control,observation"
    parser.add_argument("--randomize", metavar="GROUPS", help=f"domain randomisation: {groups}")
    parser.add_argument("--randomize-config", metavar="FILE", help="YAML of randomisation ranges "
                        "(default: the package's configs/randomize.yaml)")  # fmt: skip


def _add_train_command(commands: Any) -> None:
    training = commands.add_parser("train", help="train a policy with Stable-Baselines3 into a run folder")
    training.add_argument("env_id", type=env_id_type)
    training.add_argument("--algo", choices=ALGORITHM_NAMES, help="default: sac")
    training.add_argument("--her", action=argparse.BooleanOptionalAction, default=None, help="override the config")
    training.add_argument("--steps", type=positive_int, help="total env steps (default: the config's n_timesteps)")
    training.add_argument("--seed", type=seed_type, help="default: 0")
    training.add_argument(
        "--obs-mode", choices=tuple(OBS_MODES), help="default: state; an image mode trains a pixel policy"
    )
    training.add_argument("--demos", type=Path, metavar="DATASET", help="Minari dataset (surgisim demos record)")
    training.add_argument("--n-envs", type=positive_int, help="envs stepping in parallel processes (default: config)")
    training.add_argument("--run-dir", type=Path, help="new run folder (default: runs/<Task>-<algo>-seed<S>)")
    training.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run from its checkpoint")
    training.add_argument("--config", type=Path, help="hyperparameter YAML (default: configs/<algo>.yaml)")
    training.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"),
                          help="where the learner runs (default cpu; auto: CUDA where there is one)")  # fmt: skip
    training.add_argument("--torch-threads", type=positive_int, default=1,
                          help="torch threads of the learner (default 1: faster on a busy or small CPU)")  # fmt: skip
    training.add_argument("--env-kwargs", nargs="+", type=_env_kwarg, metavar="KEY=VALUE",
                          help="env arguments: control=joint, action_frame=world, tool=NAME, renderer=egl, "
                          "randomize=GROUPS, randomize_config=FILE")  # fmt: skip
    training.set_defaults(run=cmd_train)


def _add_teach_command(commands: Any) -> None:
    teaching = commands.add_parser(
        "teach",
        help="teach a policy that sees what a robot has (the endoscope image, "
        "the arms' reported state, an operator's goal) from a privileged teacher (DAgger)",
    )
    teaching.add_argument("env_id", type=env_id_type)
    teaching.add_argument("--teacher", default="expert", help="expert (default), pretrained, or a state policy's "
                          "run folder or .onnx")  # fmt: skip
    teaching.add_argument("--rounds", type=positive_int, default=4, help="DAgger rounds (default 4)")
    teaching.add_argument("--episodes", type=positive_int, default=20, help="episodes per round (default 20)")
    teaching.add_argument("--epochs", type=positive_int, default=4, help="passes over the data per round (default 4)")
    teaching.add_argument("--image-size", type=int, default=64, help="endoscope image side in pixels (default 64)")
    teaching.add_argument("--randomize", default="appearance,kinematics,control",
                          help="randomisation groups the student learns under (default appearance,kinematics,"
                               "control; none)")  # fmt: skip
    teaching.add_argument(
        "--extractor",
        default="cnn",
        choices=("cnn", "keypoints"),
        help="image features: cnn (SB3's NatureCNN, default) or keypoints (image positions)",
    )
    teaching.add_argument("--shift", type=non_negative_int, default=4, metavar="PX",
                          help="images move by up to PX pixels in training, as in DrQ (default 4)")  # fmt: skip
    teaching.add_argument("--switch-weight", type=non_negative_number, default=0.0, metavar="W",
                          help="weigh a state where the teacher's action jumps (closing the jaws) 1 + W x the jump "
                               "(default 0: all states alike)")  # fmt: skip
    teaching.add_argument("--tip-zoom", type=positive_number, metavar="ZOOM",
                          help="also show the student the endoscope image magnified ZOOM times (1-16) around "
                               "the reported tip (default: none)")  # fmt: skip
    teaching.add_argument("--seed", type=seed_type, default=0)
    teaching.add_argument("--run-dir", type=Path, help="new run folder (default runs/<Task>-dagger-seed<S>)")
    teaching.set_defaults(run=cmd_teach)


def _add_sweep_command(commands: Any) -> None:
    sweeping = commands.add_parser("sweep", help="train over seeds and a hyperparameter grid on Ray")
    sweeping.add_argument("env_id", type=env_id_type)
    sweeping.add_argument("--algo", choices=ALGORITHM_NAMES, help="default: sac")
    sweeping.add_argument("--seeds", type=positive_int, help="seeds 0 to N-1 per grid point (default 5)")
    sweeping.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", help="hyperparameter values to cross")
    sweeping.add_argument("--steps", type=positive_int, help="env steps per run (default: the config's)")
    sweeping.add_argument("--config", type=Path, help="hyperparameter YAML (default: configs/<algo>.yaml)")
    sweeping.add_argument("--address", help="a running Ray cluster (ray start --head); default: a local Ray")
    sweeping.add_argument("--cpus-per-trial", type=positive_number, help="cores each run takes (default 1)")
    sweeping.add_argument("--target", type=fraction, help="success rate for steps-to-target (default 0.9)")
    sweeping.add_argument("--demos", type=Path, metavar="DATASET", help="every run learns with these demonstrations")
    sweeping.add_argument("--out", type=Path, help="new sweep folder (default sweeps/<Task>-<algo>)")
    sweeping.add_argument("--resume", type=Path, metavar="SWEEP_DIR", help="continue this sweep's runs")
    sweeping.set_defaults(run=cmd_sweep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="surgisim", description="Surgical-robot learning in PyBullet.")
    commands = parser.add_subparsers(dest="command", required=True)

    envs = commands.add_parser("envs", help="list the registered environments")
    envs.set_defaults(run=cmd_envs)

    demo = commands.add_parser("demo", help="run the best available policy and write an endoscope video")
    demo.add_argument("env_id", nargs="?", default=DEFAULT_ENV, type=env_id_type)
    demo.add_argument("--episodes", type=positive_int, default=3)
    demo.add_argument("--seed", type=seed_type, default=0)
    demo.add_argument("--out", help="video path (.mp4); default surgisim-demo/<env>-seed<S>.mp4")
    demo.add_argument("--video-size", type=int, default=256, help="video side in pixels (16 to 1024)")
    demo.add_argument("--policy", help="expert, pretrained, vision, a run folder, a model .zip or a policy .onnx "
                      "(default: the shipped policy where there is one, else the expert)")  # fmt: skip
    _add_randomization_arguments(demo)
    demo.set_defaults(run=cmd_demo)

    evaluation = commands.add_parser("evaluate", help="success rate and metrics over seeded episodes")
    _add_rollout_arguments(evaluation)
    evaluation.add_argument("--control", default="cartesian", choices=CONTROLS)
    evaluation.add_argument("--json", action="store_true", help="print one JSON object")
    evaluation.add_argument("--video", help="also write the endoscope view of every episode to this .mp4")
    evaluation.add_argument("--video-size", type=int, default=256, help="video side in pixels (16 to 1024)")
    _add_randomization_arguments(evaluation)
    evaluation.set_defaults(run=cmd_evaluate)

    _add_train_command(commands)
    _add_teach_command(commands)
    _add_sweep_command(commands)

    zoo = commands.add_parser("export-config", help="write an algorithm's hyperparameters as rl_zoo3's file")
    zoo.add_argument("algo", choices=ALGORITHM_NAMES)
    zoo.add_argument("--envs", nargs="+", type=env_id_type, help="these env ids only (default: all)")
    zoo.add_argument("--out", required=True, help="the .yml to write (rl_zoo3's --conf-file)")
    zoo.add_argument("--force", action="store_true", help="replace a file that surgisim export-config wrote")
    zoo.set_defaults(run=cmd_export_config)

    export = commands.add_parser("export", help="export a trained policy for deployment (onnxruntime only)")
    export.add_argument("run_dir", type=Path, help="run folder (or model .zip) to export")
    export.add_argument("--format", default="onnx", choices=("onnx",))
    export.add_argument("--out", type=Path, required=True, help="policy file to write")
    export.add_argument("--force", action="store_true", help="replace a policy file that surgisim exported at --out")
    export.set_defaults(run=cmd_export)

    demos = commands.add_parser("demos", help="demonstration datasets (Minari)")
    demo_commands = demos.add_subparsers(dest="demos_command", required=True)
    record = demo_commands.add_parser("record", help="record a policy's episodes to a Minari dataset")
    _add_rollout_arguments(record)
    record.add_argument("--image-size", type=int, default=84, help="side of the images of an image --obs-mode, "
                        "pixels (default 84)")  # fmt: skip
    _add_randomization_arguments(record)
    record.add_argument("--out", type=Path, help="dataset directory; default: where minari.load_dataset finds it")
    record.add_argument("--force", action="store_true", help="replace a dataset that surgisim recorded at --out")
    record.set_defaults(run=cmd_demos_record)

    for extension in entry_points(group=COMMANDS_GROUP):
        extension.load()(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command. Expected failures (bad input, a file that cannot be read or written) print
    one line and exit with status 2, Ctrl-C exits with 130; a traceback means a bug."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:  # ConfigError is a ValueError; FileExistsError an OSError
        print(f"surgisim: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupted:
        print(f"surgisim: interrupted{f': {interrupted}' if str(interrupted) else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
