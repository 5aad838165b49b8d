"""Ed25519 keys that sign registered versions, and signature checks.

The registry signs every version's ``registration.json`` (which pins every file of the version by its SHA-256, the
lineage, the name and the version number) with an Ed25519 key (RFC 8032, via the ``cryptography`` package). The key
is, in order:

1. ``$RLOPS_SIGNING_KEY``: the base64 of a raw 32-byte Ed25519 private key (for CI and servers whose secrets come
   from the environment); or
2. ``HOME/keys/registry_ed25519``: a PKCS#8 PEM file created on first use with mode 0600 (in a 0700 folder), next to
   ``registry_ed25519.pub`` holding the base64 raw public key. A key file readable by others is refused.

The public key of the signing key is stored with each version in the metadata database, so versions signed with an
older key keep verifying after the key changes, and a registration re-signed with another key is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rlops.errors import ConfigError, StorageError

ENV_VAR = "RLOPS_SIGNING_KEY"
KEY_FILE = "registry_ed25519"


class KeySource(StrEnum):
    """Where the signing key came from."""

    ENVIRONMENT = "environment"
    HOME = "home"


def key_id(public_key: str) -> str:
    """A short, stable name of a public key: the first 16 hex digits of the SHA-256 of its raw bytes."""
    return hashlib.sha256(_decode_public(public_key, "public key")).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """A private key that signs registrations, and where it came from.

    Attributes:
        private: the Ed25519 private key.
        source: the environment variable or the home folder's key file.
        path: the key file (``None`` for the environment).
    """

    private: Ed25519PrivateKey
    source: KeySource
    path: Path | None = None

    @property
    def public_key(self) -> str:
        """The base64 of the raw 32-byte public key, as stored with every version this key signs."""
        return base64.b64encode(self.private.public_key().public_bytes_raw()).decode()

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self.private.sign(data)

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key held in memory only (tests, or to print for ``$RLOPS_SIGNING_KEY``)."""
        return cls(Ed25519PrivateKey.generate(), KeySource.ENVIRONMENT)

    def to_base64(self) -> str:
        """The raw private key as base64: the format ``$RLOPS_SIGNING_KEY`` takes. Keep it secret."""
        return base64.b64encode(self.private.private_bytes_raw()).decode()


def load_signing_key(keys_dir: Path, *, environ: Mapping[str, str] | None = None,
                     create: bool = True) -> SigningKey:
    """The registry's signing key: ``$RLOPS_SIGNING_KEY`` if set, else the home folder's key file.

    Args:
        keys_dir: ``HOME/keys``.
        environ: the environment to read (default ``os.environ``).
        create: create the key file (0600) when it is missing (default); else a missing file is a ConfigError.

    Raises:
        ConfigError: the variable is not a base64 raw Ed25519 key, the key file is malformed or readable by
            others, or it is missing and ``create`` is False.
        StorageError: the key file cannot be created or read.
    """
    env = os.environ if environ is None else environ
    encoded = env.get(ENV_VAR)
    if encoded:
        try:
            raw = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as e:
            raise ConfigError(f"{ENV_VAR}: not valid base64 (expected the base64 of a raw 32-byte Ed25519 "
                              "private key)") from e
        if len(raw) != 32:
            raise ConfigError(f"{ENV_VAR}: decodes to {len(raw)} bytes; a raw Ed25519 private key has 32")
        return SigningKey(Ed25519PrivateKey.from_private_bytes(raw), KeySource.ENVIRONMENT)
    path = keys_dir / KEY_FILE
    if not path.exists():
        if not create:
            raise ConfigError(f"{path}: no signing key (set {ENV_VAR} or register a model to create one)")
        _create_key_file(path)
    return _read_key_file(path)


def _create_key_file(path: Path) -> None:
    """Write a new key to ``path`` unless another process got there first (link is atomic and never replaces)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates it 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return  # another process created the key first: use theirs
        finally:
            os.unlink(tmp)
        public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
        pub_path = path.with_name(path.name + ".pub")
        pub_tmp = pub_path.with_name(f".{pub_path.name}.tmp{os.getpid()}")
        pub_tmp.write_text(public + "\n")
        os.replace(pub_tmp, pub_path)
    except OSError as e:
        raise StorageError(f"{path}: cannot create the registry signing key: {e.strerror or e}") from e


def _read_key_file(path: Path) -> SigningKey:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as e:
        raise StorageError(f"{path}: cannot read the registry signing key: {e.strerror or e}") from e
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(f"{path}: the signing key is readable by other users (mode {mode & 0o777:o}); "
                          f"run 'chmod 600 {path}'")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path}: not an unencrypted PKCS#8 PEM private key") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: holds a {type(key).__name__}, not an Ed25519 private key")
    return SigningKey(key, KeySource.HOME, path)


def _decode_public(public_key: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigError(f"{what}: not valid base64") from e
    if len(raw) != 32:
        raise ConfigError(f"{what}: decodes to {len(raw)} bytes; a raw Ed25519 public key has 32")
    return raw


def verify_signature(public_key: str, data: bytes, signature: bytes, *, source: str) -> None:
    """Check an Ed25519 signature.

    Args:
        public_key: base64 raw public key of the expected signer.
        data: the signed bytes.
        signature: the 64-byte signature.
        source: what was signed (a file path), for the error message.

    Raises:
        ConfigError: the signature does not verify: ``data`` changed after signing, or another key signed it.
    """
    key = Ed25519PublicKey.from_public_bytes(_decode_public(public_key, f"{source}: public key"))
    try:
        key.verify(signature, data)
    except InvalidSignature as e:
        raise ConfigError(f"{source}: signature does not verify with key {key_id(public_key)}: the file was "
                          "changed after signing, or signed by another key; refusing it") from e
