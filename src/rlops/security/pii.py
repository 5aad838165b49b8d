"""PII fields in the event log: what a schema's ``pii`` section allows the log to keep.

A schema may list context fields about the person that are not features (no policy input)::

    pii: {email: hash, name: drop, country: keep}

Before a decision is logged its context passes through :class:`PiiFilter`: a ``drop`` field is removed, a
``hash`` field becomes ``hmac:<hex>``, the keyed HMAC-SHA256 of its value (the same value always gives the same
token, so the log can still be joined to other systems that hash the same way, but the value cannot be read back or
guessed without the key), a ``keep`` field stays. The key is ``$RLOPS_PII_KEY``, else the file
``HOME/keys/pii_hmac`` (created on first need, owner-only). Losing the key only means new tokens no longer match
old ones; nothing stored becomes unreadable.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlops.errors import ConfigError
from rlops.schema import Schema
from rlops.schema.schema import PiiPolicy
from rlops.security.keyfiles import load_key

ENV_VAR = "RLOPS_PII_KEY"
KEY_FILE = "pii_hmac"
TOKEN_PREFIX = "hmac:"


def load_pii_key(keys_dir: Path, *, environ: Mapping[str, str] | None = None, create: bool = True) -> bytes:
    """The PII HMAC key: ``$RLOPS_PII_KEY``, else ``keys_dir/pii_hmac`` (made with mode 0600 if missing and
    ``create``).

    Raises:
        ConfigError: the key is shorter than 32 bytes, or its file is readable by others, or missing and not created.
        StorageError: the key file cannot be read or written.
    """
    key = load_key(keys_dir, env_var=ENV_VAR, file_name=KEY_FILE, what="the PII key", create=create,
                   environ=environ)
    if key is None:
        raise ConfigError(f"{keys_dir / KEY_FILE}: no PII key (set ${ENV_VAR} or let rlops create the file)")
    return key


def pii_token(key: bytes, field: str, value: Any) -> str:
    """The logged token of ``value`` in PII field ``field``: ``hmac:`` and 32 hex digits (128 bits)."""
    message = f"{field}\0{type(value).__name__}\0{value}".encode()
    return TOKEN_PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


class PiiFilter:
    """Applies a schema's PII policies to validated contexts before they are logged.

    Args:
        schema: the deployment's schema.
        key: the HMAC key (needed only when a field is hashed; see :func:`load_pii_key`).
    """

    def __init__(self, schema: Schema, key: bytes | None) -> None:
        self.policies = {name: PiiPolicy(policy) for name, policy in schema.pii.items()}
        self.key = key
        if self.key is None and PiiPolicy.HASH in self.policies.values():
            raise ConfigError("pii: hashing a field needs a key ($RLOPS_PII_KEY or HOME/keys/pii_hmac)")

    @property
    def active(self) -> bool:
        """Whether any field is dropped or hashed."""
        return any(p is not PiiPolicy.KEEP for p in self.policies.values())

    def protect(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """What the log may keep of ``context``."""
        out = dict(context)
        for name, policy in self.policies.items():
            if name not in out:
                continue
            if policy is PiiPolicy.DROP:
                del out[name]
            elif policy is PiiPolicy.HASH and self.key is not None:
                out[name] = pii_token(self.key, name, out[name])
        return out
