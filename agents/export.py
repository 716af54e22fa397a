"""Policy export to ONNX: a file that runs with onnxruntime alone (no torch, no SB3).

The exported graph takes the policy's observation keys as named float32 inputs (each with a
leading batch axis): state vectors, to which it applies the run's observation normalisation,
and endoscope images as the env gives them (height, width, channels; 0-255), which it
transposes and scales as SB3 does. It returns the deterministic action in [-1, 1]. The ROS 2
bridge loads such files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from stable_baselines3.common.policies import BasePolicy

from surgisim.agents.models import load_policy
from surgisim.agents.onnx_policy import ENV_ID_KEY, IMAGE_KEYS, TIP_ZOOM_KEY, WRITER_KEY, OnnxPolicy
from surgisim.envs.files import atomic_write, check_writable

__all__ = ["ExportedActor", "OnnxPolicy", "export_onnx"]

OBS_EPSILON = 1e-8  # VecNormalize's default


def deterministic_action(policy: BasePolicy, observation: dict[str, torch.Tensor]) -> torch.Tensor:
    """The policy's deterministic action: the actor of SAC, TD3 and TQC, or PPO's Gaussian mean
    (computed directly: a torch distribution object does not trace)."""
    if hasattr(policy, "actor"):
        return policy._predict(observation, deterministic=True)
    features = policy.extract_features(observation, policy.pi_features_extractor)
    return policy.action_net(policy.mlp_extractor.forward_actor(features))


class ExportedActor(torch.nn.Module):
    """Normalisation, image layout and the deterministic actor, as one module over separate key tensors."""

    def __init__(self, policy: BasePolicy, keys: list[str], stats: dict[str, tuple[np.ndarray, np.ndarray]],
                 clip: float) -> None:  # fmt: skip
        super().__init__()
        self.policy, self.keys, self.clip = policy, keys, clip
        for key in keys:
            mean, var = stats.get(key, (None, None))
            self.register_buffer(f"mean_{key}", torch.as_tensor(mean if mean is not None else 0.0, dtype=torch.float32))
            scale = np.sqrt(var + OBS_EPSILON) if var is not None else 1.0
            self.register_buffer(f"scale_{key}", torch.as_tensor(scale, dtype=torch.float32))
        self.normalised = bool(stats)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        observation = {}
        for key, value in zip(self.keys, inputs, strict=True):
            if key in IMAGE_KEYS:
                value = value.permute(0, 3, 1, 2)  # the policy takes channels first; it scales by 1/255 itself
            elif self.normalised:
                value = torch.clamp((value - getattr(self, f"mean_{key}")) / getattr(self, f"scale_{key}"),
                                    -self.clip, self.clip)  # fmt: skip
            observation[key] = value
        return torch.clamp(deterministic_action(self.policy, observation), -1.0, 1.0)


def is_export(path: Path) -> bool:
    """Whether ``path`` is a policy file that ``export_onnx`` wrote."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX at all fails in many ways
        return False
    return any(prop.key == WRITER_KEY for prop in model.metadata_props)


def export_onnx(run: Path, out: Path, force: bool = False) -> Path:
    """Write the run's policy as ONNX to ``out``; an existing file is replaced only with ``force``,
    and only if it is a policy that surgisim exported."""
    out = check_writable(out, "policy file", (".onnx",))
    if out.exists() or out.is_symlink():
        if not force:
            raise FileExistsError(f"{out} already exists; choose another --out or pass --force")
        if not out.is_file() or out.is_symlink() or not is_export(out):
            raise ValueError(f"{out} is not a policy that surgisim exported; --force replaces only those")
    policy = load_policy(Path(run))
    space = policy.model.observation_space
    keys = list(space.spaces)
    normalizer = policy.normalizer
    stats = {key: (normalizer.obs_rms[key].mean, normalizer.obs_rms[key].var) for key in keys
             if key in normalizer.obs_rms} if normalizer else {}  # fmt: skip
    clip = float(normalizer.clip_obs) if normalizer else 0.0
    module = ExportedActor(policy.model.policy, keys, stats, clip).eval()
    # Images are channels first inside SB3; the file takes them as the env gives them.
    shapes = [(*space[key].shape[1:], space[key].shape[0]) if key in IMAGE_KEYS else space[key].shape for key in keys]
    examples = tuple(torch.zeros((1, *shape)) for shape in shapes)
    batch = {key: {0: "batch"} for key in [*keys, "action"]}

    metadata = {WRITER_KEY: "surgisim export", **({ENV_ID_KEY: policy.env_id} if policy.env_id else {})}
    if policy.env_kwargs.get("tip_zoom") is not None:
        metadata[TIP_ZOOM_KEY] = f"{policy.env_kwargs['tip_zoom']:g}"

    def write(path: Path) -> None:
        with torch.no_grad():
            torch.onnx.export(module, examples, str(path), input_names=keys, output_names=["action"],
                              dynamic_axes=batch, opset_version=17, dynamo=False)  # fmt: skip
        exported = onnx.load(str(path))
        onnx.helper.set_model_props(exported, metadata)
        onnx.save(exported, str(path))

    atomic_write(out, write)
    return out
