"""``rlops serve --workers N`` with one change, the fix this benchmark proposes: TCP_NODELAY on the listening socket.

uvicorn's ``Config.bind_socket`` makes the shared socket with ``socket.socket(family)`` (protocol 0), and asyncio
only turns Nagle's algorithm off on sockets whose protocol is ``IPPROTO_TCP``; so with several workers no accepted
connection has TCP_NODELAY, and an answer written in two pieces (head, then body) waits for the client's delayed
ACK (about 40 ms on Linux). On Linux accepted connections inherit TCP_NODELAY from the listening socket.

Otherwise the same steps as ``rlops.cli.main._serve_workers``, through rlops's public pieces. Run::

    python bench/serve_peers/rlops_nodelay.py --home H --port P --workers 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
from pathlib import Path

import uvicorn
from uvicorn.supervisors import Multiprocess

from rlops.service import ServiceSettings, configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    settings = ServiceSettings.from_env(args.home, port=args.port, workers=args.workers)
    configure_logging()
    shared = settings.home / "run" / f"metrics-{os.getpid()}"
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir(parents=True)
    config = uvicorn.Config("rlops.service.app:app_from_env", factory=True, host=settings.host, port=settings.port,
                            workers=settings.workers, log_level="warning")
    sock = config.bind_socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the one change
    os.environ.update({**settings.to_env(), "PROMETHEUS_MULTIPROC_DIR": str(shared)})
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
        shutil.rmtree(shared, ignore_errors=True)


if __name__ == "__main__":
    main()
