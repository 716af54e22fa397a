"""Trained policies shipped with the package (``assets/policies``), as ONNX files with a card.

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


def folder() -> Path:
    """Where the shipped policies and their cards are."""
    return Path(str(files("surgisim.assets"))) / "policies"


def available() -> list[str]:
    """Env ids that have a shipped policy."""
    return sorted(f"surgisim/{path.stem}" for path in folder().glob("*.onnx"))


def card(env_id: str) -> dict[str, Any]:
    """The shipped policy's card (how it was trained, its measured success)."""
    return yaml.safe_load(_file(env_id, ".yaml").read_text())


def load_pretrained(env_id: str) -> OnnxPolicy:
    """The shipped policy for ``env_id`` as a callable policy (onnxruntime)."""
    return OnnxPolicy(_file(env_id, ".onnx"))


def _file(env_id: str, suffix: str) -> Path:
    path = folder() / f"{env_id.removeprefix('surgisim/')}{suffix}"
    if not path.is_file():
        shipped = ", ".join(available()) or "none"
        raise ValueError(f"no pretrained policy for {env_id}; shipped for: {shipped}")
    return path
