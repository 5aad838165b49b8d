"""The edge runtime runs without torch or Stable-Baselines3: checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rlops.export import export_policy
from tests.export.cases import CASES, contexts

HEAVY = ["torch", "stable_baselines3", "sklearn", "pandas", "scipy", "gymnasium", "pyarrow", "vowpalwabbit"]

SCRIPT = """
import json, sys
import rlops.edge
after_import = sorted(m for m in {heavy!r} if m in sys.modules)
policy = rlops.edge.EdgePolicy.load(sys.argv[1], seed=0, log=sys.argv[2])
contexts = json.loads(sys.argv[3])
single = policy.decide(contexts[0], unit_id="u1")
batch = policy.decide_batch(contexts, unit_ids=["u"] * len(contexts))
policy.close()
print(json.dumps({{"after_import": after_import, "after_deciding": sorted(m for m in {heavy!r} if m in sys.modules),
                  "single": single.action, "batch": len(batch)}}))
"""


def test_import_and_decisions_load_neither_torch_nor_sb3(tmp_path: Path) -> None:
    for name in ("sb3_ppo_discrete", "linucb"):
        model = export_policy(CASES[name](), tmp_path / f"{name}.onnx", policy_version="x@r1").model_path
        proc = subprocess.run([sys.executable, "-c", SCRIPT.format(heavy=HEAVY), str(model),
                               str(tmp_path / f"{name}.jsonl"), json.dumps(contexts(5))],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["after_import"] == [] and result["after_deciding"] == [], (name, result)
        assert result["single"] in ["a", "b", "c", "d"] and result["batch"] == 5
        assert len((tmp_path / f"{name}.jsonl").read_text().splitlines()) == 2
