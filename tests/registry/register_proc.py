"""A process that registers one policy folder a few times: the other side of the concurrency test."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rlops.home import Home
from rlops.registry import Registry


def main(home: str, policy: str, count: int, go: str) -> None:
    with Registry(Home.resolve(home)) as registry:
        print("ready", flush=True)
        while not Path(go).exists():  # start together with the other processes
            time.sleep(0.001)
        for _ in range(count):
            print(registry.register("pricing", Path(policy)).version, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
