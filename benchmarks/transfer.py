"""Transfer: how much success survives appearances and kinematic errors never seen in training.

Run: ``python benchmarks/transfer.py [--steps N] [--randomized-steps M] [--episodes E] [--parts pixels kinematics
vision seeds] [--seeds 3]``.

``pixels``: trains the EndoscopeTrack pixel policy (PPO from RGB only, the package's config, the
same seed, 300k steps each) twice, without randomisation and with ``randomize="appearance"``,
into ``runs/transfer/`` (a finished run is reused; an unfinished one is
continued), then evaluates each on the nominal scene (the training appearance of the plain
policy), on the training randomisation, and on the held-out appearances of
``configs/randomize_heldout.yaml`` (textures, lights and tints that training never draws). The
gap is nominal minus held-out success (the table's last column); the target is that
randomisation halves it. RGB alone, because depth hardly changes with appearance: a policy that
can lean on depth would hide the gap.

``kinematics``: runs every shipped state policy on the nominal robot, under the kinematic errors
of ``configs/randomize.yaml`` (about 3 mm at the tip, as a dVRK) and under the held-out ones
(about 7 mm), none of which it was trained with.

``vision``: for each task with a shipped vision policy (``--policy vision``, taught by DAgger
from what a robot has), the state and the vision policy side by side on the nominal scene, under
the training kinematic errors, the held-out ones, and the held-out appearance.

``seeds``: students of ``--seeds-task`` taught with the shipped card's settings from training
seeds 0 to ``--seeds`` - 1 (into ``runs/transfer/``; a finished one is reused), each evaluated
in the same four conditions; per condition the interquartile mean over the seeds with its 95 %
bootstrap interval (``surgisim.agents.stats``).

Figures come from this run on this machine; episodes use seeds ``--seed`` onwards in every row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from surgisim.agents.evaluate import evaluate
from surgisim.agents.pretrained import available, card
from surgisim.agents.stats import bootstrap_ci, iqm
from surgisim.agents.train import train
from surgisim.envs.randomization import config_path

PIXEL_ENV = "surgisim/EndoscopeTrack-v0"
HELD_OUT = str(config_path("randomize_heldout.yaml"))


def pixel_run(root: Path, randomize: str | None, steps: int) -> Path:
    """Train (or continue, or reuse) the RGB pixel policy with ``randomize``."""
    run_dir = root / f"EndoscopeTrack-rgb-{randomize or 'plain'}"
    extra = {"randomize": randomize} if randomize else None
    checkpoint = run_dir / "checkpoint.json"
    if checkpoint.exists():
        if json.loads(checkpoint.read_text())["timesteps"] >= steps:
            return run_dir
        return train(PIXEL_ENV, steps=steps, resume=run_dir, progress_bar=False)
    return train(PIXEL_ENV, "ppo", steps=steps, seed=0, obs_mode="rgb", run_dir=run_dir, progress_bar=False,
                 extra_env_kwargs=extra)  # fmt: skip


def success(env_id: str, policy: str, episodes: int, seed: int, randomize: str | None, config: str | None) -> float:
    kwargs = {"randomize": randomize, "randomize_config": config}
    return evaluate(env_id, policy, episodes, seed, kwargs)["success_rate"]


def pixels(root: Path, steps: dict[str | None, int], episodes: int, seed: int) -> None:
    print(f"EndoscopeTrack from RGB (PPO, seed 0), success over {episodes} episodes")
    columns = ("trained with", "steps", "nominal scene", "training randomisation", "held-out appearance", "gap")
    print("| " + " | ".join(columns) + " |\n|---|---:|---:|---:|---:|---:|")
    gaps, held = {}, {}
    for randomize in (None, "appearance"):
        run = str(pixel_run(root, randomize, steps[randomize]))
        nominal = success(PIXEL_ENV, run, episodes, seed, None, None)
        trained = success(PIXEL_ENV, run, episodes, seed, "appearance", None)
        held_out = success(PIXEL_ENV, run, episodes, seed, "appearance", HELD_OUT)
        gaps[randomize], held[randomize] = nominal - held_out, held_out
        rates = " | ".join(f"{rate:.2f}" for rate in (nominal, trained, held_out))
        print(
            f"| {randomize or 'no randomisation'} | {steps[randomize]} | {rates} | {gaps[randomize]:+.2f} |", flush=True
        )
    halved = gaps["appearance"] <= gaps[None] / 2
    print(f"target: randomisation halves the gap ({gaps[None]:+.2f} -> {gaps['appearance']:+.2f}): "
          f"{'met' if halved else 'NOT met'}")  # fmt: skip
    print(f"held-out success: {held[None]:.2f} without randomisation, {held['appearance']:.2f} with it")


def kinematics(episodes: int, seed: int) -> None:
    print(f"Shipped state policies under kinematic errors, success over {episodes} episodes")
    print("| policy | nominal | training errors (about 3 mm) | held-out errors (about 7 mm) |")
    print("|---|---:|---:|---:|")
    for env_id in available():
        rates = [success(env_id, "pretrained", episodes, seed, randomize, config)
                 for randomize, config in ((None, None), ("kinematics", None), ("kinematics", HELD_OUT))]  # fmt: skip
        print(f"| {env_id} | " + " | ".join(f"{rate:.2f}" for rate in rates) + " |", flush=True)


def vision(episodes: int, seed: int) -> None:
    print(f"State and vision policies, success over {episodes} episodes")
    print("| task | policy | nominal | training errors (about 3 mm) | held-out errors (about 7 mm) | "
          "held-out appearance |\n|---|---|---:|---:|---:|---:|")  # fmt: skip
    for env_id in available(vision=True):
        for policy in ("pretrained", "vision"):
            if policy == "pretrained" and env_id not in available():
                continue
            rates = [success(env_id, policy, episodes, seed, randomize, config) for randomize, config in CONDITIONS]
            print(f"| {env_id} | {policy} | " + " | ".join(f"{rate:.2f}" for rate in rates) + " |", flush=True)


CONDITIONS = ((None, None), ("kinematics", None), ("kinematics", HELD_OUT), ("appearance", HELD_OUT))


def student_run(root: Path, env_id: str, seed: int) -> Path:
    """A student taught as the shipped vision policy's card says, from training seed ``seed``."""
    from surgisim.agents.dagger import Schedule, teach

    run_dir = root / f"{env_id.removeprefix('surgisim/').removesuffix('-v0')}-dagger-seed{seed}"
    if (run_dir / "checkpoint.json").exists():
        return run_dir
    shipped = card(env_id, vision=True)
    taught = shipped["teacher"]
    schedule = Schedule(**{key: value for key, value in taught.items() if key != "policy"})
    hyper = shipped["hyperparameters"]
    return teach(env_id, taught["policy"], schedule, seed, hyper["image_size"], shipped["randomize"], run_dir,
                 extractor=hyper.get("extractor", "cnn"), tip_zoom=hyper.get("tip_zoom"))  # fmt: skip


def seeds(root: Path, env_id: str, count: int, episodes: int, seed: int) -> None:
    print(f"{env_id} students over training seeds 0-{count - 1}, success over {episodes} episodes each")
    rates = np.array([[success(env_id, str(student_run(root, env_id, training)), episodes, seed, randomize, config)
                       for randomize, config in CONDITIONS] for training in range(count)])  # fmt: skip
    print("| condition | per seed | IQM | 95 % interval |\n|---|---|---:|---:|")
    names = ("nominal", "training errors (about 3 mm)", "held-out errors (about 7 mm)", "held-out appearance")
    for name, column in zip(names, rates.T, strict=True):
        low, high = bootstrap_ci(column)
        per_seed = " ".join(f"{rate:.2f}" for rate in column)
        print(f"| {name} | {per_seed} | {iqm(column):.2f} | [{low:.2f}, {high:.2f}] |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=("pixels", "kinematics", "vision", "seeds"),
                        default=["pixels", "kinematics", "vision", "seeds"])  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of the students (the seeds part)")
    parser.add_argument("--seeds-task", default="surgisim/EndoscopeTrack-v0", help="whose students (the seeds part)")
    parser.add_argument(
        "--steps", type=int, default=300_000, help="PPO steps of the pixel policy without randomisation"
    )
    parser.add_argument("--randomized-steps", type=int, default=300_000,
                        help="PPO steps of the one with appearance randomisation")  # fmt: skip
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1000, help="evaluation episodes use seeds from here")
    parser.add_argument("--runs", type=Path, default=Path("runs/transfer"))
    args = parser.parse_args()
    if "kinematics" in args.parts:
        kinematics(args.episodes, args.seed)
    if "vision" in args.parts:
        vision(args.episodes, args.seed)
    if "seeds" in args.parts:
        seeds(args.runs, args.seeds_task, args.seeds, args.episodes, args.seed)
    if "pixels" in args.parts:
        pixels(args.runs, {None: args.steps, "appearance": args.randomized_steps}, args.episodes, args.seed)


if __name__ == "__main__":
    main()
