"""Shipping a trained policy: export a finished run into ``assets/policies`` with its card.

For maintainers: ``python -m surgisim.agents.ship RUN_DIR ...``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from surgisim.agents import pretrained
from surgisim.agents.demos import load_demos
from surgisim.agents.evaluate import evaluate
from surgisim.agents.export import export_onnx
from surgisim.agents.files import atomic_write
from surgisim.agents.models import read_settings
from surgisim.envs import task_name


def ship(run: Path, episodes: int = 100, seed: int = 0, folder: Path | None = None) -> Path:
    """Export a finished run into ``folder`` (default: the package's ``assets/policies``) with its
    card: how to reproduce it, and the success measured now with the exported file over
    ``episodes`` seeded episodes. For maintainers: ``python -m surgisim.agents.ship RUN_DIR``."""
    run, folder = Path(run), Path(folder) if folder is not None else pretrained.folder()
    settings = read_settings(run / "config.yaml")
    env_id, hyper = settings["env_id"], settings["hyperparameters"]
    name, task = env_id.removeprefix("surgisim/"), task_name(env_id)
    policy = export_onnx(run, folder / f"{name}.onnx", force=True)
    metrics = evaluate(env_id, str(policy), episodes, seed)
    train_command = f"surgisim train {task} --algo {settings['algo']} --seed {settings['seed']}"
    if settings["obs_mode"] != "state":
        train_command += f" --obs-mode {settings['obs_mode']}"
    reproduce = []
    if settings.get("demos"):
        demos = load_demos(Path(settings["demos"]))
        first_seed = next(demos.storage.get_episode_metadata([0]))["seed"]
        reproduce.append(f"surgisim demos record {task} --episodes {demos.total_episodes} --seed {first_seed} "
                         f"--out demos/{task}-expert")  # fmt: skip
        train_command += f" --demos demos/{task}-expert"
    run_name = f"runs/{task}-{settings['algo']}-seed{settings['seed']}"
    export_command = f"surgisim export {run_name} --format onnx --out {name}.onnx"
    reproduce += [f"{train_command} --run-dir {run_name}", export_command]
    shipped = {
        "env_id": env_id,
        "algo": settings["algo"],
        "her": bool(hyper.get("her", False)),
        "demos": bool(settings.get("demos")),
        "obs_mode": settings["obs_mode"],
        "seed": settings["seed"],
        "n_timesteps": hyper["n_timesteps"],
        "hyperparameters": hyper,  # as resolved from configs/<algo>.yaml
        "reproduce": reproduce,
        "evaluation": f"surgisim evaluate {task} --policy pretrained --episodes {episodes} --seed {seed}",
        "success_rate": metrics["success_rate"],
        "cost_rate": metrics["cost_rate"],
        "evaluation_episodes": episodes,
    }
    card_file = folder / f"{name}.yaml"
    text = f"# Shipped policy for {env_id} (ONNX, runs with onnxruntime alone).\n"
    text += yaml.safe_dump(shipped, sort_keys=False, width=200)
    atomic_write(card_file, lambda path: path.write_text(text))
    return card_file


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        print(ship(Path(folder)).read_text())
