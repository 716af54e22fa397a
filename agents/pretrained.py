"""Trained policies shipped with the package, as ONNX files with a card: the state policies
(``assets/policies``, ``--policy pretrained``) and the vision policies that see only what a robot
has (``assets/policies/vision``, ``--policy vision``: ``obs_mode="robot"``, taught by DAgger).

Each ``<Task>-v<N>.onnx`` has a ``.yaml`` card beside it: the algorithm, seed and steps, the
commands that reproduce it, and the success rate measured when it was shipped (written by
``surgisim.agents.ship``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from surgisim.agents.onnx_policy import OnnxPolicy


def folder(vision: bool = False) -> Path:
    """Where the shipped state (or vision) policies and their cards are."""
    return Path(str(files("surgisim.assets"))) / "policies" / ("vision" if vision else "")


def available(vision: bool = False) -> list[str]:
    """Env ids that have a shipped state (or vision) policy."""
    return sorted(f"surgisim/{path.stem}" for path in folder(vision).glob("*.onnx"))


def card(env_id: str, vision: bool = False) -> dict[str, Any]:
    """The shipped policy's card (how it was trained, its measured success)."""
    return yaml.safe_load(_file(env_id, ".yaml", vision).read_text())


def load_pretrained(env_id: str, vision: bool = False) -> OnnxPolicy:
    """The shipped state (or vision) policy for ``env_id`` as a callable policy (onnxruntime)."""
    return OnnxPolicy(_file(env_id, ".onnx", vision))


def _file(env_id: str, suffix: str, vision: bool) -> Path:
    path = folder(vision) / f"{env_id.removeprefix('surgisim/')}{suffix}"
    if not path.is_file():
        kind, shipped = "vision" if vision else "pretrained", ", ".join(available(vision)) or "none"
        raise ValueError(f"no {kind} policy for {env_id}; shipped for: {shipped}")
    return path
