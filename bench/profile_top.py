"""Summarise a py-spy raw (collapsed stacks) profile: top functions by inclusive and self time.

python -m bench.profile_top bench/results/profile_ours.txt [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_FRAME = re.compile(r"^(?P<fn>[^ ]+) \((?P<file>[^:]+)(?::\d+)?\)$")


def short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m.group('fn')} ({path})"


def summarise(path: str, top: int = 25) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack or not n.isdigit():
                continue
            count = int(n)
            total += count
            frames = [short(fr) for fr in stack.split(";")]
            for fr in set(frames):
                inclusive[fr] += count
            own[frames[-1]] += count
    out = [f"samples: {total}", "", "inclusive (share of samples with the function on the stack):"]
    out += [f"  {100 * c / total:5.1f}%  {fn}" for fn, c in inclusive.most_common(top)]
    out += ["", "self (share of samples where the function itself runs):"]
    out += [f"  {100 * c / total:5.1f}%  {fn}" for fn, c in own.most_common(top)]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    print(summarise(args.path, args.top))


if __name__ == "__main__":
    main()
