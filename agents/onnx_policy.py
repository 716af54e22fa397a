"""Running an exported policy with onnxruntime alone (no torch, no Stable-Baselines3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from surgisim.envs.core import OBS_MODES

IMAGE_KEYS = ("rgb", "depth", "seg", "tip_rgb")
# Metadata that ``surgisim export`` writes into the file: the env it was trained on, who wrote it,
# and the magnification of a robot-mode policy's tip view (which its input shape does not say).
ENV_ID_KEY, WRITER_KEY, TIP_ZOOM_KEY = "env_id", "surgisim.writer", "surgisim.tip_zoom"


class OnnxPolicy:
    """An exported policy run by onnxruntime: ``policy(observation) -> action``.

    Inputs are observation keys, each with a leading batch axis: float32 state vectors, and
    endoscope images as the env gives them (height, width, channels; values 0-255).
    ``env_kwargs`` is the observation mode and image size the policy needs; ``env_id`` the env it
    was trained on (``None`` where the file does not say), ``observation_shapes`` and
    ``action_shape`` what it takes and gives."""

    def __init__(self, path: Path) -> None:
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:
            raise ValueError(f"{path}: not a loadable ONNX policy ({type(error).__name__}: {error})") from None
        inputs = self.session.get_inputs()
        self.source = str(path)
        self.inputs = [item.name for item in inputs]
        self.env_kwargs = _observation_needs({item.name: item.shape for item in inputs})
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.env_id = metadata.get(ENV_ID_KEY)
        if "tip_rgb" in self.inputs:
            if TIP_ZOOM_KEY not in metadata:
                raise ValueError(f"{path}: the policy takes a tip view but the file does not say its magnification "
                                 f"({TIP_ZOOM_KEY}); export it again with surgisim export")  # fmt: skip
            self.env_kwargs["tip_zoom"] = float(metadata[TIP_ZOOM_KEY])
        self.observation_shapes = {item.name: tuple(item.shape[1:]) for item in inputs}
        self.action_shape = tuple(self.session.get_outputs()[0].shape[1:])

    def reset(self) -> None:
        """Stateless: nothing to forget."""

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        feed = {key: np.asarray(observation[key], dtype=np.float32)[None] for key in self.inputs}
        return self.session.run(None, feed)[0][0]


def _observation_needs(shapes: dict[str, list[Any]]) -> dict[str, Any]:
    """The obs_mode and image size that give these inputs (nothing for a state policy)."""
    images = tuple(key for key in IMAGE_KEYS if key in shapes)
    if not images:
        return {}
    if "state" in shapes:  # the arms' reported state beside the image: what a robot has
        return {"obs_mode": "robot", "image_size": int(shapes[images[0]][1])}
    mode = next(name for name, keys in OBS_MODES.items() if set(keys) >= set(images))
    return {"obs_mode": mode, "image_size": int(shapes[images[0]][1])}
