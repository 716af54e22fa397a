"""Policy export to ONNX: a file that runs with onnxruntime alone (no torch, no SB3).

The exported graph takes the state observation keys as named float32 inputs (each with a
leading batch axis), applies the run's observation normalisation, and returns the
deterministic action in [-1, 1]. The ROS 2 bridge loads such files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from surgisim.agents.files import atomic_write
from surgisim.agents.onnx_policy import OnnxPolicy
from surgisim.agents.train import load_policy

__all__ = ["ExportedActor", "OnnxPolicy", "export_onnx"]

STATE_KEYS = ("observation", "achieved_goal", "desired_goal")
OBS_EPSILON = 1e-8  # VecNormalize's default


class ExportedActor(torch.nn.Module):
    """Normalisation and the deterministic actor, as one module over separate key tensors."""

    def __init__(self, actor: torch.nn.Module, keys: list[str], stats: dict[str, tuple[np.ndarray, np.ndarray]],
                 clip: float) -> None:  # fmt: skip
        super().__init__()
        self.actor, self.keys, self.clip = actor, keys, clip
        for key in keys:
            mean, var = stats.get(key, (None, None))
            self.register_buffer(f"mean_{key}", torch.as_tensor(mean if mean is not None else 0.0, dtype=torch.float32))
            scale = np.sqrt(var + OBS_EPSILON) if var is not None else 1.0
            self.register_buffer(f"scale_{key}", torch.as_tensor(scale, dtype=torch.float32))
        self.normalised = bool(stats)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        observation = {}
        for key, value in zip(self.keys, inputs, strict=True):
            if self.normalised:
                value = torch.clamp((value - getattr(self, f"mean_{key}")) / getattr(self, f"scale_{key}"),
                                    -self.clip, self.clip)  # fmt: skip
            observation[key] = value
        return self.actor(observation, deterministic=True)


def export_onnx(run: Path, out: Path, force: bool = False) -> Path:
    """Write the run's policy as ONNX to ``out``; an existing file is replaced only with ``force``."""
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists; choose another --out or pass --force")
    policy = load_policy(Path(run))
    keys = list(policy.model.observation_space.spaces)
    if set(keys) != set(STATE_KEYS):
        raise ValueError(f"{run}: only state-observation policies export for now (this one uses {keys})")
    normalizer = policy.normalizer
    stats = {key: (normalizer.obs_rms[key].mean, normalizer.obs_rms[key].var) for key in keys} if normalizer else {}
    clip = float(normalizer.clip_obs) if normalizer else 0.0
    module = ExportedActor(policy.model.policy.actor, keys, stats, clip).eval()
    examples = tuple(torch.zeros((1, *policy.model.observation_space[key].shape)) for key in keys)
    batch = {key: {0: "batch"} for key in [*keys, "action"]}

    def write(path: Path) -> None:
        with torch.no_grad():
            torch.onnx.export(module, examples, str(path), input_names=keys, output_names=["action"],
                              dynamic_axes=batch, opset_version=17, dynamo=False)  # fmt: skip

    atomic_write(out, write)
    return out
