"""Deploying from the image: a policy run over DDS against a twin whose arm is not where its joints
say, two processes, as on an uncalibrated dVRK.

Run: ``python benchmarks/deploy_vision.py [--task NeedlePick] [--policies pretrained vision]
[--episodes 10] [--seed 7000] [--camera-size 256] [--rate 20] [--duration 25]``. For each episode
seed and policy, ``surgisim ros twin TASK --camera --randomize kinematics`` plays the arm (the
training ranges of ``configs/randomize.yaml``: about 3 mm at the tip) and ``surgisim ros run TASK
--policy P`` drives it: the state policy from the measured joints and the needle's pose the twin
publishes as a tracker would (the true pose), the vision policy from the camera topic and the
joints alone. Success is the twin's (the needle really at the goal). Prints each policy's
success rate and, for the vision policy, what the image pipeline and the policy cost a tick (the
runner's medians). Both ends tick at ``--rate`` (the twin renders ``--camera-size`` images each
tick). Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

CLI = [sys.executable, "-m", "surgisim.agents.cli", "ros"]


def episode(task: str, policy: str, seed: int, args: argparse.Namespace, domain: int) -> tuple[bool, dict]:
    """One episode: the twin's success, and the runner's summary."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    twin = subprocess.Popen([*CLI, "twin", task, "--seed", str(seed), "--camera", "--image-size", str(args.camera_size),
                             "--randomize", "kinematics", "--rate", str(args.rate), "--until-success", "--duration",
                             str(args.duration), "--transport", "dds"], env=env, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        runner = subprocess.run([*CLI, "run", task, "--policy", policy, "--enable", "--rate", str(args.rate),
                                 "--duration", str(args.duration), "--transport", "dds"], env=env,
                                capture_output=True, text=True, timeout=args.duration + 120)  # fmt: skip
        twin_out = twin.communicate(timeout=args.duration + 60)[0]
    finally:
        twin.kill()
    summary = json.loads(runner.stdout.strip().splitlines()[-1]) if runner.stdout.strip() else {}
    return bool(json.loads(twin_out.strip().splitlines()[-1])["is_success"]), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="NeedlePick")
    parser.add_argument("--policies", nargs="+", default=["pretrained", "vision"])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7000, help="episode i is the twin's seed S + i")
    parser.add_argument("--camera-size", type=int, default=256, help="side of the twin's camera images, pixels")
    parser.add_argument("--rate", type=float, default=20.0, help="twin and runner ticks per second")
    parser.add_argument("--duration", type=float, default=25.0, help="seconds an episode may take")
    args = parser.parse_args()
    print(f"{args.task} over DDS against `ros twin --camera --randomize kinematics`, {args.episodes} episodes from "
          f"seed {args.seed}, {args.rate:g} Hz")  # fmt: skip
    for index, policy in enumerate(args.policies):
        results = [episode(args.task, policy, args.seed + i, args, domain=170 + index) for i in range(args.episodes)]
        rate = np.mean([succeeded for succeeded, _ in results])
        image = [summary["image_ms_median"] for _, summary in results if summary.get("image_ms_median")]
        model = [summary["policy_ms_median"] for _, summary in results if summary.get("policy_ms_median")]
        cost = f", image {np.median(image):.2f} ms and policy {np.median(model):.2f} ms a tick" if image else ""
        print(f"--policy {policy}: success {rate:.2f} ({sum(s for s, _ in results)} of {len(results)}){cost}",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
