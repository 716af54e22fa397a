"""Writes the frames in ``docs/``: every task's first endoscope view (RGB, depth, segmentation) at
256², and the same scene under appearance randomisation, training and held-out.

Run: ``python scripts/render_frames.py [--out docs]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

import surgisim.envs
from surgisim.envs.camera import SegLabel
from surgisim.envs.randomization import config_path

SIZE = 256
# Segmentation colours (RGB) in the figure, by label.
PALETTE = {
    SegLabel.BACKGROUND: (0, 0, 0), SegLabel.TISSUE: (200, 120, 110), SegLabel.INSTRUMENT: (90, 200, 255),
    SegLabel.TARGET: (40, 220, 60), SegLabel.ANATOMY: (200, 40, 200), SegLabel.NEEDLE: (230, 230, 60),
    SegLabel.THREAD: (255, 255, 255), SegLabel.ENDOSCOPE: (100, 100, 100), SegLabel.INSTRUMENT_PSM2: (255, 140, 0),
    SegLabel.DAMAGE: (120, 0, 0),
}  # fmt: skip


def coloured(seg: np.ndarray) -> np.ndarray:
    table = np.zeros((256, 3), np.uint8)
    for label, colour in PALETTE.items():
        table[label] = colour
    return table[seg[..., 0]]


def task_grid(seed: int) -> np.ndarray:
    """One row per task: RGB, depth (near is dark), segmentation."""
    rows = []
    for env_id in surgisim.envs.env_ids():
        env = gym.make(env_id, obs_mode="all", image_size=SIZE)
        observation, _ = env.reset(seed=seed)
        env.close()
        depth = np.repeat(observation["depth"], 3, axis=2)
        rows.append(np.concatenate([observation["rgb"], depth, coloured(observation["seg"])], axis=1))
    return np.concatenate(rows, axis=0)


def randomised_row(env_id: str, config: str | None, seeds: range) -> np.ndarray:
    env = gym.make(env_id, obs_mode="rgb", image_size=SIZE, randomize="appearance", randomize_config=config)
    frames = [env.reset(seed=seed)[0]["rgb"] for seed in seeds]
    env.close()
    return np.concatenate(frames, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    outputs = {
        "frames.jpg": task_grid(args.seed),
        "randomized.jpg": np.concatenate([
            randomised_row("surgisim/NavigateAnatomy-v0", None, range(4)),
            randomised_row("surgisim/NavigateAnatomy-v0", str(config_path("randomize_heldout.yaml")), range(4)),
        ], axis=0),
    }  # fmt: skip
    for name, image in outputs.items():
        cv2.imwrite(str(args.out / name), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
