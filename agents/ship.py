"""Shipping a trained policy: export a finished run into ``assets/policies`` with its card.

For maintainers: ``python -m surgisim.agents.ship RUN_DIR ...``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from surgisim.agents import pretrained
from surgisim.agents.config import load_config
from surgisim.agents.demos import load_demos
from surgisim.agents.evaluate import evaluate
from surgisim.agents.export import export_onnx
from surgisim.agents.models import read_settings
from surgisim.envs import task_name
from surgisim.envs.files import atomic_write


def ship(run: Path, episodes: int = 100, seed: int = 0, folder: Path | None = None) -> Path:
    """Export a finished run into ``folder`` (default: the package's ``assets/policies``) with its
    card: how to reproduce it, and the success measured now with the exported file over
    ``episodes`` seeded episodes. For maintainers: ``python -m surgisim.agents.ship RUN_DIR``."""
    settings = read_settings(Path(run) / "config.yaml")
    vision = settings["obs_mode"] == "robot"  # a student that sees what a robot has: --policy vision
    run, folder = Path(run), Path(folder) if folder is not None else pretrained.folder(vision)
    env_id, hyper = settings["env_id"], settings["hyperparameters"]
    name, task = env_id.removeprefix("surgisim/"), task_name(env_id)
    run_name = f"runs/{task}-{'dagger' if vision else settings['algo']}-seed{settings['seed']}"
    reproduce = []
    if settings.get("demos"):
        demos = load_demos(Path(settings["demos"]))
        first_seed = next(demos.storage.get_episode_metadata([0]))["seed"]
        reproduce.append(f"surgisim demos record {task} --episodes {demos.total_episodes} --seed {first_seed} "
                         f"--out demos/{task}-expert")  # fmt: skip
    reproduce += training_commands(run, settings, run_name, f"demos/{task}-expert")
    reproduce.append(f"surgisim export {run_name} --format onnx --out {name}.onnx")
    policy = export_onnx(run, folder / f"{name}.onnx", force=True)
    metrics = evaluate(env_id, str(policy), episodes, seed)
    shipped = {
        "env_id": env_id,
        "algo": settings["algo"],
        "her": bool(hyper.get("her", False)),
        "demos": bool(settings.get("demos")),
        "obs_mode": settings["obs_mode"],
        "seed": settings["seed"],
        "n_timesteps": hyper.get("n_timesteps"),
        "hyperparameters": hyper,  # as resolved from configs/<algo>.yaml
        "reproduce": reproduce,
        "evaluation": f"surgisim evaluate {task} --policy {'vision' if vision else 'pretrained'} --episodes {episodes} "
        f"--seed {seed}",
        "success_rate": metrics["success_rate"],
        "cost_rate": metrics["cost_rate"],
        "evaluation_episodes": episodes,
    }
    if vision:  # what it was taught with, and how it does where the arm is not where its joints say
        del shipped["n_timesteps"], shipped["her"], shipped["demos"]
        rounds = (run / "dagger.csv").read_text().splitlines()
        last = dict(zip(rounds[0].split(","), rounds[-1].split(","), strict=True))
        errors = evaluate(env_id, str(policy), episodes, seed, {"randomize": "kinematics"})
        shipped.update({"teacher": settings["teacher"], "labelled_states": int(last["samples"]),
                        "training_wall_s": float(last["wall_s"]), "randomize": settings["env_kwargs"].get("randomize"),
                        "success_rate_kinematic_errors": errors["success_rate"]})  # fmt: skip
    card_file = folder / f"{name}.yaml"
    text = f"# Shipped policy for {env_id} (ONNX, runs with onnxruntime alone).\n"
    text += yaml.safe_dump(shipped, sort_keys=False, width=200)
    atomic_write(card_file, lambda path: path.write_text(text))
    return card_file


def training_commands(run: Path, settings: dict[str, Any], run_name: str, demos_name: str) -> list[str]:
    """The ``surgisim train`` (or ``teach``) commands that made ``run`` (its ``command.txt``: every invocation,
    resumes included), with its folder and demonstrations under the names the card uses. A
    ``ValueError`` when they cannot reproduce it from the package: a run of an older surgisim (no
    such commands), or one trained with hyperparameters other than the package's."""
    env_id, algo = settings["env_id"], settings["algo"]
    paths = {str(run.resolve()): run_name, settings.get("demos"): demos_name}
    commands = []
    for line in (run / "command.txt").read_text().splitlines():
        try:
            words = shlex.split(line)
        except ValueError as error:  # a line cut short by a kill
            raise ValueError(f"{run / 'command.txt'}: cannot read {line[:80]!r} ({error})") from None
        if words[:2] not in (["surgisim", "train"], ["surgisim", "teach"]):
            raise ValueError(f"{run / 'command.txt'}: {line[:80]!r} is not a surgisim train command (a run of an "
                             "older surgisim): its card could not say how it was made; train it again")  # fmt: skip
        if "--config" in words:
            at = words.index("--config")
            if load_config(algo, env_id, Path(words[at + 1])) != load_config(algo, env_id):
                raise ValueError(f"{run} was trained with the settings of {words[at + 1]}, not configs/{algo}.yaml: "
                                 f"put them there under {env_id} first, so that the card reproduces it")  # fmt: skip
            del words[at : at + 2]
        commands.append(shlex.join(paths.get(word, word) for word in words))
    return commands


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        print(ship(Path(folder)).read_text())
