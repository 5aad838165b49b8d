"""PII fields: the log keeps only what the schema's policy allows (checked in the raw files), and what it keeps still
validates and joins."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.errors import ConfigError, ValidationError
from rlops.scenarios import SyntheticBandit
from rlops.schema import Schema
from rlops.security.pii import KEY_FILE, PiiFilter, load_pii_key, pii_token

REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}


def _schema() -> dict[str, object]:
    return {**SyntheticBandit().schema.to_dict(), "pii": {"email": "hash", "full_name": "drop", "country": "keep"}}


def test_the_log_keeps_only_what_the_policy_allows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    context = SyntheticBandit().sample_contexts(1, np.random.default_rng(0))[0]
    person = {"email": "ada.lovelace@example.org", "full_name": "Augusta Ada King", "country": "GB"}
    with Engine(home) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": _schema(), "reward": REWARD,
                                               "policy": {"kind": "linucb"}}))
        d = engine.decide("news", {**context, **person}, "u1")
        again = engine.decide("news", {**context, **person}, "u2")
        engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": True}}])
        logged = engine.decision(d.decision_id)["context"]
        key = load_pii_key(engine.home.keys)
        assert "full_name" not in logged and logged["country"] == "GB"
        assert logged["email"] == pii_token(key, "email", person["email"])
        assert engine.decision(again.decision_id)["context"]["email"] == logged["email"]  # joinable by token
        assert engine.spec("news").schema_.validate_context(logged) == logged  # the log's contexts still validate
        assert engine.interactions("news", include_pending=True).interactions.num_rows == 1
        engine.log.rotate()
        engine.log.compact()
    assert (home / "keys" / KEY_FILE).stat().st_mode & 0o077 == 0
    for path in home.rglob("*"):
        if path.is_file() and path.name != KEY_FILE:
            data = path.read_bytes()
            assert b"ada.lovelace" not in data and b"Augusta" not in data, path


def test_pii_fields_are_not_features_and_are_checked() -> None:
    base = SyntheticBandit().schema.to_dict()
    with pytest.raises(ConfigError, match=r"pii\.age: is a feature"):
        Schema.from_dict({**base, "pii": {"age": "drop"}})
    with pytest.raises(ConfigError, match="pii"):
        Schema.from_dict({**base, "pii": {"email": "encrypt"}})
    schema = Schema.from_dict({**base, "pii": {"email": "hash"}})
    context = SyntheticBandit().sample_contexts(1, np.random.default_rng(0))[0]
    with pytest.raises(ValidationError) as info:
        schema.validate_context({**context, "email": ["a", "b"]})
    assert info.value.field == "context.email"
    with pytest.raises(ValidationError, match="unknown field"):
        schema.validate_context({**context, "phone": "123"})  # only declared PII fields pass
    assert "pii" not in SyntheticBandit().schema.to_dict()  # schemas without PII hash as before
    with pytest.raises(ConfigError, match="needs a key"):
        PiiFilter(schema, None)


def test_key_from_the_environment_and_refused_when_exposed(tmp_path: Path) -> None:
    assert load_pii_key(tmp_path, environ={"RLOPS_PII_KEY": "k" * 40}) == b"k" * 40
    with pytest.raises(ConfigError, match="at least 32"):
        load_pii_key(tmp_path, environ={"RLOPS_PII_KEY": "short"})
    made = load_pii_key(tmp_path / "keys", environ={})
    assert load_pii_key(tmp_path / "keys", environ={}) == made  # stable across calls
    os.chmod(tmp_path / "keys" / KEY_FILE, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_pii_key(tmp_path / "keys", environ={})
