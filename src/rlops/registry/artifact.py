"""A registered version on disk, and its integrity check.

::

    HOME/registry/NAME/vN/
      policy/              a copy of the policy folder (manifest.json + state files)
      report.json          the validation report, when one was given
      reference_profile.json  the reference profile of its training or validation data, when one was given
                           (:class:`rlops.monitoring.drift.ReferenceProfile`; what drift is measured against)
      registration.json    what is signed: name, version, content hash, SHA-256 of every other file, lineage,
                           the signer's public key
      registration.sig     base64 Ed25519 signature of registration.json's exact bytes

The signature covers ``registration.json`` byte for byte, and that document pins every other file by hash, so
changing any byte of any file, adding or removing a file, or re-signing with another key is detected by
:func:`verify_folder`.

With a data key (:mod:`rlops.encryption`) every file but ``registration.json`` and ``registration.sig`` is stored
sealed. Hashes, and so the signature, cover the *plaintext*: re-encrypting a version under a new key (``rlops
encryption rotate``) changes no hash and needs no re-signing, and a changed ciphertext fails its authentication tag
before any hash is compared. The registration itself stays plaintext: it holds names, hashes and lineage (the
metadata database holds the same document), no data.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

from rlops.encryption import DecryptionError, Keyring, sha256_plain
from rlops.errors import ConfigError, NotFoundError, StorageError
from rlops.policies.io import content_hash
from rlops.registry.signing import SigningKey, key_id, verify_signature

FORMAT = "rlops.registration"
FORMAT_VERSION = 1
POLICY = "policy"
REPORT = "report.json"
#: The reference profile's file; the same name as :data:`rlops.monitoring.drift.profile.FILENAME`.
REFERENCE = "reference_profile.json"
REGISTRATION = "registration.json"
SIGNATURE = "registration.sig"


def _walk(folder: Path) -> list[Path]:
    """Every file under ``folder``, sorted; a symlink anywhere is refused (it could point outside the home)."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise ConfigError(f"{path}: symbolic links are not allowed in a registered version")
        if path.is_file():
            found.append(path)
    return found


def file_hashes(folder: Path, *, exclude: tuple[str, ...] = (REGISTRATION, SIGNATURE),
                keyring: Keyring | None = None) -> dict[str, str]:
    """``relative posix path -> sha256`` of every file under ``folder`` except the registration and signature
    (of the plaintext: ``keyring`` opens sealed files)."""
    keys = keyring or Keyring()
    return {p.relative_to(folder).as_posix(): sha256_plain(p, keys) for p in _walk(folder)
            if p.relative_to(folder).as_posix() not in exclude}


def sign_folder(folder: Path, registration: dict[str, Any], key: SigningKey) -> bytes:
    """Write ``registration.json`` and its signature into ``folder`` (fsynced); returns the signed bytes."""
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, **registration,
                "public_key": key.public_key, "key_id": key.key_id}
    data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    signature = base64.b64encode(key.sign(data)) + b"\n"
    for name, content in ((REGISTRATION, data), (SIGNATURE, signature)):
        with (folder / name).open("wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
    return data


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` (so a renamed-in version survives a power cut)."""
    for path in [*_walk(folder), *sorted(p for p in folder.rglob("*") if p.is_dir()), folder]:
        fsync_path(path)


def fsync_path(folder: Path) -> None:
    """Flush one file, or a folder's entries (a rename into it is durable afterwards)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise StorageError(f"{folder}: cannot flush to disk: {e.strerror or e}") from e


def verify_folder(folder: Path, *, name: str, version: int, public_key: str, content: str,
                  keyring: Keyring | None = None) -> dict[str, Any]:
    """Check a version folder against what the database recorded; return its registration document.

    Args:
        folder: ``HOME/registry/NAME/vN``.
        name: the name the database holds it under.
        version: the version number the database holds it under.
        public_key: the signer's public key the database recorded at registration (the trust anchor: a key
            inside the folder is never trusted on its own).
        content: the policy content hash the database recorded.
        keyring: the data keys that open sealed files (their plaintext is what the hashes pin).

    Raises:
        NotFoundError: the folder is missing.
        ConfigError: naming the file: unsigned (no signature), a signature that does not verify, a registration
            for another name/version/key/content, a file missing, changed (a sealed file failing its
            authentication tag included) or added; KeyNotFoundError (a ConfigError) when a file is sealed with a
            key that ``keyring`` does not hold.
    """
    try:
        return _verify_folder(folder, name, version, public_key, content, keyring or Keyring())
    except DecryptionError as e:
        raise ConfigError(f"{e}; {name}@{version} was changed after it was registered; refusing it") from e


def _verify_folder(folder: Path, name: str, version: int, public_key: str, content: str,
                   keyring: Keyring) -> dict[str, Any]:
    if not folder.is_dir():
        raise NotFoundError(f"{folder}: the files of {name}@{version} are missing")
    registration = folder / REGISTRATION
    signature = folder / SIGNATURE
    if not registration.is_file():
        raise ConfigError(f"{registration}: missing: {name}@{version} has no signed registration; refusing it")
    if not signature.is_file():
        raise ConfigError(f"{signature}: missing: {name}@{version} is unsigned; refusing it")
    try:
        data = registration.read_bytes()
        sig = base64.b64decode(signature.read_bytes().strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigError(f"{signature}: not a base64 signature; refusing {name}@{version}") from e
    except OSError as e:
        raise StorageError(f"{folder}: cannot read: {e.strerror or e}") from e
    verify_signature(public_key, data, sig, source=str(registration))
    try:
        document = json.loads(data)
    except json.JSONDecodeError as e:  # signed garbage: only a buggy writer could produce it
        raise ConfigError(f"{registration}: not JSON") from e
    if document.get("format") != FORMAT or document.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{registration}: not a {FORMAT} document of format_version {FORMAT_VERSION}")
    expected = {"name": name, "version": version, "public_key": public_key, "content_hash": content,
                "key_id": key_id(public_key)}
    for field, value in expected.items():
        if document.get(field) != value:
            raise ConfigError(f"{registration}: {field} is {document.get(field)!r}, the registry recorded {value!r}")
    listed = document.get("files")
    if not isinstance(listed, dict):
        raise ConfigError(f"{registration}: files must map each file to its SHA-256")
    present = {p.relative_to(folder).as_posix(): p for p in _walk(folder)}
    for rel, digest in sorted(listed.items()):
        path = present.pop(rel, None)
        if path is None:
            raise ConfigError(f"{folder / rel}: missing from {name}@{version}; refusing it")
        if sha256_plain(path, keyring) != digest:
            raise ConfigError(f"{path}: does not match its SHA-256 in the signed registration; {name}@{version} "
                              "was changed after it was registered; refusing it")
    present.pop(REGISTRATION, None)
    present.pop(SIGNATURE, None)
    if present:
        extra = sorted(present)[0]
        raise ConfigError(f"{folder / extra}: not part of the signed registration of {name}@{version}; refusing it")
    if content_hash(folder / POLICY, keyring=keyring) != content:
        raise ConfigError(f"{folder / POLICY}: content hash differs from the registered one; refusing it")
    return dict(document)
