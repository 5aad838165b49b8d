"""Closed-loop HTTP/1.1 load over keep-alive connections, light enough not to be the bottleneck.

``C`` connections each send the next request as soon as the previous answer is complete (one request in flight per
connection, so ``C`` is the concurrency). Requests are encoded once up front; answers are parsed only as far as
the status line, ``Content-Length`` or chunked framing. Only the standard library (plus ``uvloop`` when
importable), so any interpreter can run it.

Every request is the same kind of body, ``{"unit_id": "u-<k>", "context": {"f0": x0, ..., "f19": x19}}`` with
floats in [-1, 1] from a fixed seed, so every server sees the same byte stream. With ``$RLOPS_API_KEY`` set (as
for the rlops client), every request also carries ``Authorization: Bearer $RLOPS_API_KEY``: ``rlops serve`` needs
it, and servers that do not check it still read the same bytes. (An environment variable, not an option, so that
the key does not show in the process list.)

Prints ``window start`` and ``window end`` lines when the measured window opens and closes, then one JSON
object: completed requests and throughput over the measured window (after the warm-up), latency
percentiles of the requests completed in that window, errors by kind, and the generator's own CPU use.

Run::

    python bench/serve_peers/loadgen.py --url http://127.0.0.1:8000/decide --concurrency 8 --seconds 10
    RLOPS_API_KEY=rlk_... python bench/serve_peers/loadgen.py --url http://127.0.0.1:8000/v1/deployments/bench/decide
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

FEATURES = 20
DISTINCT_BODIES = 1024


def request_bodies(n: int = DISTINCT_BODIES, seed: int = 0) -> list[bytes]:
    """``n`` JSON bodies ``{"unit_id", "context"}`` with 20 float features each (the same for every server)."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        context = {f"f{j}": round(rng.uniform(-1.0, 1.0), 4) for j in range(FEATURES)}
        out.append(json.dumps({"unit_id": f"u-{k}", "context": context}, separators=(",", ":")).encode())
    return out


def encode_requests(host: str, port: int, path: str, bodies: list[bytes], api_key: str | None = None) -> list[bytes]:
    """Whole HTTP/1.1 requests, one per body; with ``api_key``, each carries ``Authorization: Bearer <api_key>``."""
    auth = "" if api_key is None else f"Authorization: Bearer {api_key}\r\n"
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{auth}"
            "Connection: keep-alive\r\nContent-Length: ")
    return [head.encode() + str(len(b)).encode() + b"\r\n\r\n" + b for b in bodies]


def _chunked_end(buf: bytes | bytearray, pos: int) -> int:
    """Index just past a complete chunked body starting at ``pos``, or -1 while incomplete (no trailers)."""
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return -1
        size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
        if size == 0:
            end = buf.find(b"\r\n", line_end + 2)
            return -1 if end < 0 else end + 2
        pos = line_end + 2 + size + 2
        if pos > len(buf):
            return -1


class Stats:
    """What the connections record: latencies and outcomes of requests completed inside the measured window."""

    def __init__(self) -> None:
        self.window_start = float("inf")
        self.window_end = float("inf")
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.sample: bytes = b""
        self.stopping = False

    def record(self, started: float, ended: float, status: int, body: bytes) -> None:
        if self.window_start <= ended < self.window_end:
            if 200 <= status < 300:
                self.latencies.append(ended - started)
                if not self.sample:
                    self.sample = body[:400]
            else:
                self.errors[f"http {status}"] += 1
                if not self.sample:
                    self.sample = body[:400]


class Connection(asyncio.Protocol):
    """One keep-alive connection: send, read the whole answer, record it, send the next."""

    def __init__(self, requests: list[bytes], offset: int, stats: Stats, done: asyncio.Future[None]) -> None:
        self.requests, self.k, self.stats, self.done = requests, offset, stats, done
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.started = 0.0
        self.in_flight = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport subclass
        self.send()

    def send(self) -> None:
        if self.transport is None:
            return
        if self.stats.stopping:
            self.transport.close()
            return
        self.k = (self.k + 1) % len(self.requests)
        self.in_flight = True
        self.started = time.perf_counter()
        self.transport.write(self.requests[self.k])

    def data_received(self, data: bytes) -> None:
        self.buf += data
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self.buf[:head_end]).lower()
        body_start = head_end + 4
        length_at = head.find(b"\r\ncontent-length:")
        if length_at >= 0:
            line_end = head.find(b"\r\n", length_at + 2)
            length = int(head[length_at + 17: None if line_end < 0 else line_end])
            end = body_start + length
            if len(self.buf) < end:
                return
        elif b"transfer-encoding: chunked" in head:
            end = _chunked_end(self.buf, body_start)
            if end < 0:
                return
        else:
            return  # wait for the close (not expected from any server here)
        ended = time.perf_counter()
        status = int(head[9:12])
        self.stats.record(self.started, ended, status, bytes(self.buf[body_start:end]))
        self.in_flight = False
        del self.buf[:end]
        if b"\r\nconnection: close" in head and self.transport is not None:
            self.transport.close()
            return
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        stats = self.stats
        if not stats.stopping and self.in_flight and stats.window_start <= time.perf_counter() < stats.window_end:
            stats.errors["connection lost"] += 1
        if not self.done.done():
            self.done.set_result(None)


async def run(url: str, concurrency: int, warmup: float, seconds: float,
              api_key: str | None = None) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = encode_requests(host, port, parts.path or "/", request_bodies(), api_key)
    stats = Stats()
    loop = asyncio.get_running_loop()
    conns: list[tuple[Connection, asyncio.Future[None]]] = []

    async def keep_open(i: int) -> None:
        """Hold one connection open for the whole run; reopen it (counted as an error) if the server drops it."""
        offset = i * (len(requests) // max(concurrency, 1))
        while not stats.stopping:
            done: asyncio.Future[None] = loop.create_future()
            conn = Connection(requests, offset, stats, done)
            try:
                await loop.create_connection(lambda c=conn: c, host, port)  # type: ignore[misc]
            except OSError:
                if stats.window_start <= time.perf_counter() < stats.window_end:
                    stats.errors["connect failed"] += 1
                await asyncio.sleep(0.05)
                continue
            conns.append((conn, done))
            await done
            offset = conn.k

    tasks = [asyncio.ensure_future(keep_open(i)) for i in range(concurrency)]
    start = time.perf_counter()
    stats.window_start = start + warmup
    stats.window_end = stats.window_start + seconds
    await asyncio.sleep(warmup)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    print("window start", flush=True)  # lets the caller take its own readings over the same window
    await asyncio.sleep(max(0.0, stats.window_end - time.perf_counter()))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    print("window end", flush=True)
    stats.stopping = True
    # Requests still in flight at the end are not counted; give them a moment to finish, then close.
    await asyncio.sleep(0.2)
    for conn, _ in conns:
        if conn.transport is not None:
            conn.transport.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat = sorted(stats.latencies)

    def pct(q: float) -> float | None:
        return None if not lat else lat[min(len(lat) - 1, int(q * len(lat)))] * 1000.0

    cpu = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / seconds
    return {"url": url, "concurrency": concurrency, "seconds": seconds, "requests": len(lat),
            "rps": len(lat) / seconds, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": sum(stats.errors.values()),
            "error_kinds": dict(stats.errors), "generator_cpu": cpu, "sample": stats.sample.decode(errors="replace"),
            "event_loop": type(loop).__module__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="where to POST, e.g. http://127.0.0.1:8000/decide")
    parser.add_argument("--concurrency", type=int, default=1, help="keep-alive connections, one request each")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop")
    args = parser.parse_args()
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    result = asyncio.run(run(args.url, args.concurrency, args.warmup, args.seconds,
                             os.environ.get("RLOPS_API_KEY") or None))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
