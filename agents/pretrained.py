"""Trained policies shipped with the package (``assets/policies``), as ONNX files with a card.

Each ``<Task>-v<N>.onnx`` has a ``.yaml`` card beside it: the algorithm, seed and steps, the
commands that reproduce it, and the success rate measured when it was shipped.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml


def _folder() -> Path:
    return Path(str(files("surgisim.assets"))) / "policies"


def available() -> list[str]:
    """Env ids that have a shipped policy."""
    return sorted(f"surgisim/{path.stem}" for path in _folder().glob("*.onnx"))


def card(env_id: str) -> dict[str, Any]:
    """The shipped policy's card (how it was trained, its measured success)."""
    return yaml.safe_load(_file(env_id, ".yaml").read_text())


def load_pretrained(env_id: str) -> Any:
    """The shipped policy for ``env_id`` as a callable policy (onnxruntime)."""
    from surgisim.agents.onnx_policy import OnnxPolicy

    return OnnxPolicy(_file(env_id, ".onnx"))


def _file(env_id: str, suffix: str) -> Path:
    path = _folder() / f"{env_id.removeprefix('surgisim/')}{suffix}"
    if not path.is_file():
        shipped = ", ".join(available()) or "none"
        raise ValueError(f"no pretrained policy for {env_id}; shipped for: {shipped}")
    return path


def ship(run: Path, episodes: int = 100, seed: int = 0, folder: Path | None = None) -> Path:
    """Export a finished run into ``folder`` (default: the package's ``assets/policies``) with its
    card: how to reproduce it, and the success measured now with the exported file over
    ``episodes`` seeded episodes. For maintainers: ``python -m surgisim.agents.pretrained RUN_DIR``."""
    from surgisim.agents.evaluate import evaluate
    from surgisim.agents.export import export_onnx
    from surgisim.agents.files import atomic_write
    from surgisim.envs import task_name

    run, folder = Path(run), Path(folder) if folder is not None else _folder()
    settings = yaml.safe_load((run / "config.yaml").read_text())
    env_id, hyper = settings["env_id"], settings["hyperparameters"]
    name, task = env_id.removeprefix("surgisim/"), task_name(env_id)
    policy = export_onnx(run, folder / f"{name}.onnx", force=True)
    metrics = evaluate(env_id, str(policy), episodes, seed)
    train_command = f"surgisim train {task} --algo {settings['algo']} --seed {settings['seed']}"
    if settings["obs_mode"] != "state":
        train_command += f" --obs-mode {settings['obs_mode']}"
    reproduce = []
    if settings.get("demos"):
        from surgisim.agents.demos import load_demos

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
    import sys

    for folder in sys.argv[1:]:
        print(ship(Path(folder)).read_text())
