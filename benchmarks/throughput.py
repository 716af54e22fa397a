"""Env throughput: steps/s per id and obs_mode, reset time and render time, against panda-gym.

Run: ``python benchmarks/throughput.py [--steps N]``. Prints one table, then the target ratios:
NeedleReach state >= 1.5x PandaReach state; NeedleReach "all" at 84x84 >= 8x PandaReach with an
84x84 rgb_array render every step. Figures come from this run on this machine.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import surgisim.envs
from surgisim.envs.core import OBS_MODES


def measure(env: gym.Env, steps: int, render_each_step: bool = False) -> dict[str, float]:
    """Steps/s with random actions (resets included, as in training), mean reset and render ms."""
    env.action_space.seed(0)
    env.reset(seed=0)
    for _ in range(20):  # warm-up
        env.step(env.action_space.sample())
    resets, start = [], time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if render_each_step:
            env.render()
        if terminated or truncated:
            reset_start = time.perf_counter()
            env.reset()
            resets.append(time.perf_counter() - reset_start)
    elapsed = time.perf_counter() - start
    reset_start = time.perf_counter()
    for _ in range(20):
        env.reset()
    reset_ms = (time.perf_counter() - reset_start) / 20 * 1000
    return {"steps_per_s": steps / elapsed, "reset_ms": reset_ms}


def render_ms(env: gym.Env, size: int, repeats: int = 200) -> float:
    """Mean time of one endoscope render with RGB, depth and segmentation."""
    scene = env.unwrapped.scene
    start = time.perf_counter()
    for _ in range(repeats):
        scene.render(size, depth=True, seg=True)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=84)
    args = parser.parse_args()
    rows = []

    import panda_gym  # noqa: F401  (registers PandaReach-v3)

    panda = gym.make("PandaReach-v3")
    rows.append(("PandaReach-v3", "state", measure(panda, args.steps), float("nan")))
    panda.close()
    size = args.image_size
    panda = gym.make("PandaReach-v3", render_mode="rgb_array", renderer="Tiny", render_width=size, render_height=size)
    rows.append(("PandaReach-v3", f"render {size}²", measure(panda, max(args.steps // 10, 100), True), float("nan")))
    panda.close()

    for env_id in surgisim.envs.env_ids():
        for obs_mode in OBS_MODES:
            env = gym.make(env_id, obs_mode=obs_mode, image_size=size)
            steps = args.steps if obs_mode == "state" else max(args.steps // 4, 200)
            rows.append((env_id, obs_mode, measure(env, steps), render_ms(env, size) if obs_mode == "all" else np.nan))
            env.close()

    print(f"\n{'env':30s} {'obs_mode':12s} {'steps/s':>9s} {'reset ms':>9s} {'render ms':>10s}")
    for env_id, mode, figures, render in rows:
        render_text = f"{render:10.2f}" if np.isfinite(render) else f"{'':10s}"
        print(f"{env_id:30s} {mode:12s} {figures['steps_per_s']:9.0f} {figures['reset_ms']:9.2f} {render_text}")

    rate = {(env_id, mode): figures["steps_per_s"] for env_id, mode, figures, _ in rows}
    panda_state, panda_image = rate["PandaReach-v3", "state"], rate["PandaReach-v3", f"render {size}²"]
    state_ratio = rate["surgisim/NeedleReach-v0", "state"] / panda_state
    image_ratio = rate["surgisim/NeedleReach-v0", "all"] / panda_image
    print(f"\nNeedleReach state / PandaReach state:           {state_ratio:5.1f}x  (target >= 1.5x)")
    print(f"NeedleReach all {size}² / PandaReach render {size}²: {image_ratio:5.1f}x  (target >= 8x)")


if __name__ == "__main__":
    main()
