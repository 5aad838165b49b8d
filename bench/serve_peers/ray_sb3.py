"""Ray Serve serving the same SB3 model: one deployment whose replicas call ``model.predict``.

Runs in the benchmark's own venv (``.bench-venv-ray``, made by ``bench/serve.py``), never in the project's. Starts
a fresh local Ray instance (``address="local"``: never joins someone else's cluster) with no dashboard, usage
stats and token authentication off, binds Serve's HTTP proxy to 127.0.0.1, prints ``ready`` when the application
is running, and shuts everything down on SIGTERM or SIGINT. Run::

    .bench-venv-ray/bin/python bench/serve_peers/ray_sb3.py --model model.zip --port 8000 --replicas 1

The handler is written the way Ray's own HTTP examples are: an ``async def __call__`` that awaits
``request.json()`` and calls the model. Everything else is Ray Serve's default except ``max_ongoing_requests``
(default 5 per replica), which is raised so that a replica may hold all of the benchmark's connections.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # else Ray 2.60 writes a token into ~/.ray for every later run

import numpy as np
import ray
from ray import serve
from starlette.requests import Request

FEATURES = [f"f{i}" for i in range(20)]
ACTIONS = [f"a{i}" for i in range(8)]


@serve.deployment
class SB3Decider:
    def __init__(self, model_path: str) -> None:
        from stable_baselines3 import PPO

        self.model = PPO.load(model_path, device="cpu")

    async def __call__(self, request: Request) -> dict[str, str]:
        body = await request.json()
        obs = np.array([body["context"][name] for name in FEATURES], dtype=np.float32)
        action, _ = self.model.predict(obs, deterministic=False)
        return {"action": ACTIONS[int(action)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model.zip written by PPO.save")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--max-ongoing-requests", type=int, default=64,
                        help="per replica (Ray Serve's default is 5)")
    parser.add_argument("--temp-dir", required=True, help="Ray's session folder (short path: it holds sockets)")
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ray.init(address="local", include_dashboard=False, log_to_driver=False, _temp_dir=args.temp_dir)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        app = SB3Decider.options(num_replicas=args.replicas,
                                 max_ongoing_requests=args.max_ongoing_requests).bind(args.model)
        serve.run(app, name="sb3", route_prefix="/decide")
        print("ready", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
