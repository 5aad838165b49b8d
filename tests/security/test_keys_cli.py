"""``rlops keys`` through typer's CliRunner: the key is printed once, never listed, and bad options exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rlops.cli.main  # noqa: F401  (registers every command on the app)
from rlops.cli.common import app
from rlops.errors import NotFoundError, UnauthorizedError
from rlops.home import Home
from rlops.security import KeyStore, Permission, Role

runner = CliRunner()
KEY = re.compile(r"rlk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home").ensure()


def _run(home: Home, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["keys", *args, "--home", str(home.root)], env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_create_prints_the_key_once_and_list_never(home: Home) -> None:
    code, out = _run(home, "create", "--role", "decider", "--scope", "deployment:pricing", "--scope",
                     "own-outcomes", "--name", "checkout", "--actor", "ana")
    assert code == 0, out
    keys = KEY.findall(out)
    assert len(keys) == 1, out
    key = keys[0]
    assert "only time the key is shown" in out
    with KeyStore.for_home(home) as store:
        p = store.authenticate(key)
    assert p.role is Role.DECIDER and p.allows(Permission.DECIDE, "pricing") and p.scope.own_outcomes_only

    code, listed = _run(home, "list")
    assert code == 0, listed
    secret = key.split("_", 2)[2]
    assert p.key_id in listed and "checkout" in listed and "decider" in listed
    assert secret not in listed and secret[:8] not in listed and not KEY.search(listed)


def test_revoke(home: Home) -> None:
    _, out = _run(home, "create", "--role", "viewer")
    key = KEY.findall(out)[0]
    key_id = key.split("_")[1]
    code, out = _run(home, "revoke", key_id, "--actor", "bo")
    assert code == 0 and f"{key_id} revoked" in out and "by bo" in out
    code, out = _run(home, "revoke", key_id)
    assert code == 0 and "already revoked" in out
    with KeyStore.for_home(home) as store, pytest.raises(UnauthorizedError):
        store.authenticate(key)
    _, listed = _run(home, "list", "--active")
    assert key_id not in listed
    with pytest.raises(NotFoundError, match="no API key with id"):
        _run(home, "revoke", "0123456789ab")


@pytest.mark.parametrize(("args", "option"), [
    (["--role", "root"], "--role"),
    (["--role", "admin", "--scope", "readonly"], "--scope"),
    (["--role", "admin", "--scope", "deployment:Not Valid"], "--scope"),
    (["--role", "decider", "--scope", "read-only"], "--scope"),  # leaves a decider nothing
    ([], "--role"),
])
def test_bad_role_or_scope_exits_2_naming_the_option(home: Home, args: list[str], option: str) -> None:
    code, out = _run(home, "create", *args)
    assert code == 2, out
    assert option in out
    assert not KEY.search(out)
    with KeyStore.for_home(home) as store:
        assert store.list() == []


def test_no_home_no_keys(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no rlops home folder"):
        _run(Home(tmp_path / "typo"), "create", "--role", "admin")
    assert not (tmp_path / "typo").exists()
