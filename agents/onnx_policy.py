"""Running an exported policy with onnxruntime alone (no torch, no Stable-Baselines3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxPolicy:
    """An exported policy run by onnxruntime: ``policy(observation) -> action``."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:
            raise ValueError(f"{path}: not a loadable ONNX policy ({type(error).__name__}: {error})") from None
        self.inputs = [item.name for item in self.session.get_inputs()]

    def reset(self) -> None:
        """Stateless: nothing to forget."""

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        feed = {key: np.asarray(observation[key], dtype=np.float32)[None] for key in self.inputs}
        return self.session.run(None, feed)[0][0]
