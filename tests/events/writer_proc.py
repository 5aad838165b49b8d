"""Helper process for the crash tests: appends deterministic records and prints each acknowledged id.

Every record is a pure function of its id, so a test can recompute what the writer must have stored::

    python writer_proc.py ROOT write --writer W [--threads T] [--batch B] [--segment-bytes N] [--count N] [--hold]
    python writer_proc.py ROOT compact

``write`` prints ``D <decision_id>`` after the append of a batch of decisions returns, then appends one outcome
for each decision of the batch whose index is even and prints ``O <idempotency_key>``. Lines are flushed one by
one, so every line the test reads was acknowledged. With ``--hold`` it prints ``ready`` after ``--count`` batches
and waits for stdin to close before closing the log. ``compact`` prints ``S`` once the log is open, then runs
compactions in a loop and prints ``C <n>`` after each.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
from pathlib import Path

from rlops.events import DecisionRecord, EventLog, Mode, OutcomeRecord

BASE_TS = 1_700_000_000_000_000


def decision_id(writer: int, thread: int, index: int) -> str:
    return f"w{writer}-t{thread}-{index:07d}"


def parse_id(identifier: str) -> tuple[int, int, int]:
    """(writer, thread, index) of a decision id or an outcome key."""
    w, t, i = identifier.removeprefix("o-").split("-")
    return int(w[1:]), int(t[1:]), int(i)


def expected_decision(identifier: str) -> DecisionRecord:
    """The decision the writer appends under ``identifier``: discrete, box or candidate set, by index."""
    writer, thread, index = parse_id(identifier)
    rng = random.Random(f"{writer}/{thread}/{index}")
    context = {"temperature": rng.uniform(-10, 40), "occupants": rng.randrange(10), "weekend": rng.random() < 0.3,
               "zone": rng.choice(["north", "south", "Zürich"]), "forecast": [rng.gauss(0, 1) for _ in range(3)]}
    ts = BASE_TS + index * 1000 + writer
    mode = Mode.SHADOW if index % 11 == 0 else Mode.SERVED
    if index % 5 == 0:
        vector = [rng.uniform(-1, 1) for _ in range(2)]
        return DecisionRecord(identifier, ts, "hvac", "ppo-3", mode, f"unit-{index % 17}", context, [], vector, -1,
                              rng.uniform(0.1, 3.0), None, None, rng.randrange(1000))
    if index % 7 == 0:
        names = [f"item-{rng.randrange(1000)}" for _ in range(3)]
        features = [{"price": rng.uniform(1, 9), "tags": ["a", "b"][: rng.randrange(3)]} for _ in names]
        weights = [rng.random() + 0.1 for _ in names]
        probabilities = [w / sum(weights) for w in weights]
        k = rng.randrange(len(names))
        return DecisionRecord(identifier, ts, "shop", "linucb-1", mode, f"unit-{index % 17}", context, names,
                              names[k], k, probabilities[k], probabilities, features, rng.randrange(1000))
    names = ["heat", "cool", "off"]
    weights = [rng.random() + 0.1 for _ in names]
    probabilities = [w / sum(weights) for w in weights]
    k = rng.randrange(len(names))
    return DecisionRecord(identifier, ts, "hvac", "eps-2", mode, f"unit-{index % 17}", context, names, names[k], k,
                          probabilities[k], probabilities, None, rng.randrange(1000))


def expected_outcome(key: str) -> OutcomeRecord:
    """The outcome the writer appends under idempotency key ``key`` (``o-`` + decision id)."""
    identifier = key.removeprefix("o-")
    writer, thread, index = parse_id(identifier)
    rng = random.Random(f"outcome/{writer}/{thread}/{index}")
    fields = {"clicked": rng.random() < 0.5, "revenue": round(rng.uniform(0, 100), 2), "note": "ok"}
    return OutcomeRecord(identifier, BASE_TS + index * 1000 + 500, fields, key)


def _write(log: EventLog, writer: int, thread: int, batch: int, count: int | None, out: threading.Lock) -> None:
    index = 0
    batches = 0
    while count is None or batches < count:
        ids = [decision_id(writer, thread, index + k) for k in range(batch)]
        log.append([expected_decision(i) for i in ids])
        with out:
            sys.stdout.write("".join(f"D {i}\n" for i in ids))
            sys.stdout.flush()
        keys = [f"o-{i}" for i in ids if parse_id(i)[2] % 2 == 0]
        if keys:
            log.append([expected_outcome(k) for k in keys])
            with out:
                sys.stdout.write("".join(f"O {k}\n" for k in keys))
                sys.stdout.flush()
        index += batch
        batches += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("action", choices=["write", "compact"])
    parser.add_argument("--writer", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--segment-bytes", type=int, default=64 << 20)
    parser.add_argument("--count", type=int, default=None, help="batches per thread (default: until killed)")
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args()
    log = EventLog(args.root, segment_bytes=args.segment_bytes)
    if args.action == "compact":
        sys.stdout.write("S\n")
        sys.stdout.flush()
        n = 0
        while True:
            log.compact()
            n += 1
            sys.stdout.write(f"C {n}\n")
            sys.stdout.flush()
    out = threading.Lock()
    threads = [threading.Thread(target=_write, args=(log, args.writer, t, args.batch, args.count, out))
               for t in range(args.threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if args.hold:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.read()
    log.close()


if __name__ == "__main__":
    main()
