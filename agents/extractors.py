"""Feature extractors for policies that see.

SB3's ``NatureCNN`` strides by 4 at once and flattens: fine for where things roughly are, too
coarse for a needle grasp, where the jaws must close within a millimetre of a wire that is one or
two pixels wide. ``KeypointExtractor`` keeps the resolution (strides 2, 1, 1) and ends each
feature map in a spatial softmax (Levine et al. 2016, "End-to-end training of deep visuomotor
policies"): the expected image position of each map's activation, numbers that move with what
the map tracks (jaws, needle, target). Vector inputs (the arms' reported state, the goal) pass
through as they are.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor


class SpatialSoftmax(torch.nn.Module):
    """(N, K, H, W) feature maps to (N, 2K) expected (x, y) positions in [-1, 1]."""

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        count, channels, height, width = maps.shape
        weights = torch.softmax(maps.reshape(count, channels, height * width), dim=-1)
        ys = torch.linspace(-1.0, 1.0, height, device=maps.device)
        xs = torch.linspace(-1.0, 1.0, width, device=maps.device)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        x = (weights * grid_x.reshape(1, 1, -1)).sum(dim=-1)
        y = (weights * grid_y.reshape(1, 1, -1)).sum(dim=-1)
        return torch.cat([x, y], dim=1)


class KeypointExtractor(BaseFeaturesExtractor):
    """Images (channels first, scaled to [0, 1] by SB3) to ``keypoints`` image positions each;
    vectors flattened; all concatenated."""

    def __init__(self, observation_space: gym.spaces.Dict, keypoints: int = 32) -> None:
        images = [key for key, space in observation_space.spaces.items() if is_image_space(space)]
        vectors = [key for key in observation_space.spaces if key not in images]
        size = sum(2 * keypoints for _ in images) + sum(
            int(torch.tensor(observation_space[key].shape).prod()) for key in vectors
        )
        super().__init__(observation_space, features_dim=size)
        self.images, self.vectors = images, vectors
        self.encoders = torch.nn.ModuleDict({
            key: torch.nn.Sequential(
                torch.nn.Conv2d(observation_space[key].shape[0], 32, 5, stride=2), torch.nn.ReLU(),
                torch.nn.Conv2d(32, 32, 3), torch.nn.ReLU(),
                torch.nn.Conv2d(32, keypoints, 3), SpatialSoftmax(),
            )
            for key in images
        })  # fmt: skip

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [self.encoders[key](observations[key]) for key in self.images]
        parts += [torch.flatten(observations[key], start_dim=1) for key in self.vectors]
        return torch.cat(parts, dim=1)
