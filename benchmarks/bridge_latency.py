"""Bridge latency: the policy runner closing the loop over DDS with the sim twin, two processes.

Run: ``python benchmarks/bridge_latency.py [--rates 100 200] [--duration 10] [--policy pretrained]
[--load 2]``. For each rate, the twin publishes the arm's state at twice that rate on its own
clock and the runner (the shipped NeedleReach MLP, as ONNX) commands at that rate: once on an
otherwise idle machine and once with ``--load`` processes spinning on the CPU, interleaved.
Prints the runner's sustained loop rate and the latency it adds, from a joint state arriving to
the command that answers it leaving (median and 99th percentile). Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CLI = [sys.executable, "-m", "surgisim.agents.cli", "ros"]


def measure(rate: float, duration: float, policy: str, domain: int) -> dict:
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    twin = subprocess.Popen([*CLI, "twin", "--rate", str(2 * rate), "--duration", str(duration + 30),
                             "--transport", "dds"], env=env, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        runner = subprocess.run([*CLI, "run", "--policy", policy, "--enable", "--rate", str(rate), "--duration",
                                 str(duration), "--transport", "dds"], env=env, capture_output=True, text=True,
                                timeout=duration + 120, check=True)  # fmt: skip
    finally:
        twin.terminate()
        twin.wait()
    return json.loads(runner.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", nargs="+", type=float, default=[100.0, 200.0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--policy", default="pretrained", help="pretrained (an MLP), expert or a .onnx file")
    parser.add_argument("--load", type=int, default=2, help="busy processes for the loaded runs (0: idle only)")
    args = parser.parse_args()
    print(f"{'target Hz':>9s} {'load':>4s} {'loop Hz':>8s} {'commands':>8s} {'median ms':>9s} {'p99 ms':>7s}")
    for index, rate in enumerate(args.rates):
        for load in sorted({0, args.load}):
            spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
            try:
                result = measure(rate, args.duration, args.policy, domain=150 + 2 * index + bool(load))
            finally:
                for spinner in spinners:
                    spinner.kill()
            print(f"{rate:9.0f} {load:4d} {result['rate_hz']:8.1f} {result['sent']:8d} "
                  f"{result['latency_ms_median']:9.3f} {result['latency_ms_p99']:7.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
