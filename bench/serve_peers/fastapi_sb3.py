"""The hand-written peer: a plain FastAPI endpoint around SB3's ``model.predict``, no logging, no validation
beyond pydantic's. What a user writes by hand to put an SB3 model behind HTTP.

The model is read from ``$BENCH_MODEL`` (a ``model.zip`` written by ``PPO.save``). Run::

    BENCH_MODEL=model.zip python -m uvicorn --app-dir bench/serve_peers fastapi_sb3:app --port 8000 \
        --log-level warning --no-access-log [--workers 2]
"""

from __future__ import annotations

import os

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel
from stable_baselines3 import PPO

FEATURES = [f"f{i}" for i in range(20)]
ACTIONS = [f"a{i}" for i in range(8)]

model = PPO.load(os.environ["BENCH_MODEL"], device="cpu")
app = FastAPI()


class DecideIn(BaseModel):
    unit_id: str
    context: dict[str, float]


class DecideOut(BaseModel):
    action: str


@app.post("/decide")
def decide(body: DecideIn) -> DecideOut:
    obs = np.array([body.context[name] for name in FEATURES], dtype=np.float32)
    action, _ = model.predict(obs, deterministic=False)
    return DecideOut(action=ACTIONS[int(action)])
