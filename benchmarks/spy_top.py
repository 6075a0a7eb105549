"""Summarise a py-spy ``--format raw`` profile: own time and total time per function.

python benchmarks/spy_top.py profiles/livefeed-5000.txt [-n 25]
"""

from __future__ import annotations

import argparse
import collections
import re

FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^)]*?)(?::\d+)?\)$")


def short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "livefeed/", "benchmarks/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['name']} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("-n", type=int, default=25)
    args = parser.parse_args()
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    with open(args.profile) as f:
        for line in f:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = [short(fr) for fr in stack.split(";")]
            samples += count
            own[frames[-1]] += count
            for name in set(frames):
                total[name] += count
    print(f"{samples} samples")
    print(f"{'own %':>6} {'total %':>7}  function")
    for name, n in own.most_common(args.n):
        print(f"{100 * n / samples:6.1f} {100 * total[name] / samples:7.1f}  {name}")


if __name__ == "__main__":
    main()
