"""Where a profiled step's CPU went: the samples py-spy took of one step (``bench/run.py --profile DIR``), summed
by thread and by function, each function counted once per sample (inclusive) and as the innermost frame (self).

    python -m bench.profile DIR/03-analytics.txt [--top 25]

The bench runs py-spy with ``--gil``: only the thread holding the GIL is sampled, so the shares are of the CPU time
spent in Python (and in C code that keeps the GIL: JSON, pydantic-core, BSON), not of waits on sockets.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


@dataclass
class Profile:
    """Samples of one step: in all, per thread, and per function (inclusive and self)."""

    samples: int = 0
    threads: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)

    @classmethod
    def read(cls, path: Path) -> Profile:
        """Parse py-spy's ``--format raw`` output (one stack per line, frames joined by ``;``, then a count)."""
        profile = cls()
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            thread, *frames = stack.split(";")
            functions = [_LINE.sub(")", frame) for frame in frames]
            samples = int(count)
            profile.samples += samples
            profile.threads[re.sub(r"\(\d+\): ", "", thread).removeprefix("thread ")] += samples
            for function in set(functions):
                profile.inclusive[function] += samples
            if functions:
                profile.own[functions[-1]] += samples
        return profile

    def report(self, top: int) -> str:
        """The threads, then the ``top`` functions by inclusive and by self samples, as shares of all samples."""
        def share(count: int) -> str:
            return f"{100 * count / max(self.samples, 1):5.1f}%"

        lines = [f"{self.samples} samples", "threads:"]
        lines += [f"  {share(count)}  {name}" for name, count in self.threads.most_common()]
        for title, counter in (("inclusive", self.inclusive), ("self", self.own)):
            lines.append(f"functions, {title}:")
            lines += [f"  {share(count)}  {name}" for name, count in counter.most_common(top)]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the summary of one profile file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    print(Profile.read(args.path).report(args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
