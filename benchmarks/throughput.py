"""Env throughput: steps/s per id and obs_mode, reset time and render time, against panda-gym.

Run: ``python benchmarks/throughput.py [--steps N] [--rounds R]``. Prints one table, then the
target ratios, each from R rounds that measure both envs by turns (median and range): NeedleReach
state >= 1.5x PandaReach state; NeedleReach "all" at 84x84 >= 8x PandaReach with an 84x84
rgb_array render every step. Figures come from this run on this machine.
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
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds for the ratios")
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

    print(f"\nRatios over {args.rounds} interleaved rounds (median, range), each round measuring both envs in turn:")
    state_ratios, image_ratios = interleaved_ratios(args.rounds, args.steps, size)
    for name, ratios, target in (("state / PandaReach state", state_ratios, 1.5),
                                 (f"all {size}² / PandaReach render {size}²", image_ratios, 8.0)):  # fmt: skip
        low, high = min(ratios), max(ratios)
        print(f"NeedleReach {name}: {np.median(ratios):5.1f}x ({low:.1f}-{high:.1f})  (target >= {target}x)")


def interleaved_ratios(rounds: int, steps: int, size: int) -> tuple[list[float], list[float]]:
    """NeedleReach's steps/s over PandaReach's, state and images, from ``rounds`` rounds that
    measure the two envs one after the other (first one, then the other, by turns), so that the
    load of a shared machine falls on both alike."""
    pairs = {
        "state": (gym.make("surgisim/NeedleReach-v0"), gym.make("PandaReach-v3"), steps, False),
        "image": (gym.make("surgisim/NeedleReach-v0", obs_mode="all", image_size=size),
                  gym.make("PandaReach-v3", render_mode="rgb_array", renderer="Tiny", render_width=size,
                           render_height=size), max(steps // 10, 100), True),
    }  # fmt: skip
    ratios: dict[str, list[float]] = {"state": [], "image": []}
    for round_ in range(rounds):
        for key, (needle, panda, count, render) in pairs.items():
            order = [(needle, False), (panda, render)][:: 1 if round_ % 2 == 0 else -1]
            rate = {id(env): measure(env, count, each)["steps_per_s"] for env, each in order}
            ratios[key].append(rate[id(needle)] / rate[id(panda)])
    for needle, panda, _, _ in pairs.values():
        needle.close()
        panda.close()
    return ratios["state"], ratios["image"]


if __name__ == "__main__":
    main()
