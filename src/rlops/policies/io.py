"""Saving and loading policies as folders with a versioned manifest.

A policy folder holds ``manifest.json`` plus whatever the policy writes (``state.npz``, an SB3 zip, a VW model)::

    {"format": "rlops.policy", "format_version": 1, "kind": "linucb", "rlops_version": "0.1.0",
     "config": {...}, "schema": {...}, "files": {"state.npz": "<sha256>"}}

``format_version`` is the promise: a folder written by any earlier release loads in every later release. When
the format has to change, bump :data:`FORMAT_VERSION` and add a migration to :data:`_MIGRATIONS`; never change what
an existing version means. The hash of every state file is checked on load, so a truncated or edited state file is
refused; the manifest itself is not signed here (signing of whole artefacts belongs to the registry).

With a data key (:mod:`rlops.encryption`, passed as ``keyring``) a folder is saved with every file sealed, and
hashes are those of the plaintext: a sealed folder and its plaintext twin have the same content hash. Loading a
sealed folder decrypts it into a private scratch folder (in RAM where there is one) that is removed once loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlops import __version__
from rlops.encryption import Keyring, plain_tree, read_plain, sealing_into, sha256_plain
from rlops.errors import ConfigError, NotFoundError
from rlops.policies.base import BasePolicy
from rlops.policies.preprocessed import unwrap, with_preprocessing
from rlops.policies.preprocessing import Preprocessor
from rlops.schema import Schema

FORMAT = "rlops.policy"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

_KINDS: dict[str, type[BasePolicy]] = {}
#: ``format_version -> function`` upgrading a manifest dict by one version.
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def register(cls: type[BasePolicy]) -> type[BasePolicy]:
    """Class decorator: make a policy kind loadable by name."""
    if not cls.kind:
        raise TypeError(f"{cls.__name__} has no kind")
    _KINDS[cls.kind] = cls
    return cls


def kinds() -> dict[str, type[BasePolicy]]:
    """Every registered policy kind (importing :mod:`rlops.policies` registers the built-in ones)."""
    return dict(_KINDS)


_NO_KEYS = Keyring()


def _sha256(path: Path) -> str:
    return sha256_plain(path, _NO_KEYS)


def content_hash(folder: str | Path, *, keyring: Keyring | None = None) -> str:
    """A hash of the whole saved policy (manifest included): equal folders, equal hashes.

    Files are hashed as plaintext: ``keyring`` opens sealed ones (a sealed file without it: KeyNotFoundError).
    """
    folder = Path(folder)
    keys = keyring or _NO_KEYS
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(sha256_plain(path, keys).encode())
    return digest.hexdigest()


def save_policy(policy: BasePolicy, folder: str | Path, *, keyring: Keyring | None = None) -> Path:
    """Save ``policy`` into ``folder`` (created; an existing folder is replaced atomically).

    A policy with a preprocessor in front (:func:`rlops.policies.preprocessed.with_preprocessing`) is saved as its
    inner policy with the preprocessor in the manifest.

    Args:
        policy: the policy.
        folder: where to.
        keyring: with a data key, every file is sealed under it (written in plaintext only to a scratch folder
            outside ``folder``); default None: plaintext.
    """
    policy, preprocessor = unwrap(policy)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with sealing_into(tmp, keyring or _NO_KEYS) as work:
            policy.save_files(work)
            files = {p.name: _sha256(p) for p in sorted(work.iterdir()) if p.is_file()}
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "kind": policy.kind,
                "rlops_version": __version__,
                "config": policy.config(),
                "schema": policy.schema.to_dict(),
                "files": files,
            }
            if preprocessor is not None:
                manifest["preprocessing"] = preprocessor.to_dict()
            (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_manifest(folder: str | Path, *, keyring: Keyring | None = None) -> dict[str, Any]:
    """Read and upgrade a policy manifest, refusing unknown formats with a clear error (``keyring`` opens a sealed
    manifest)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise NotFoundError(f"{folder}: not a policy folder (no {MANIFEST})")
    try:
        manifest = json.loads(read_plain(path, keyring or _NO_KEYS))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: unreadable manifest: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{path}: format is not {FORMAT!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ConfigError(f"{path}: format_version must be a positive integer")
    if version > FORMAT_VERSION:
        raise ConfigError(f"{path}: format_version {version} is newer than this rlops supports "
                          f"({FORMAT_VERSION}); upgrade rlops")
    while version < FORMAT_VERSION:
        manifest = _MIGRATIONS[version](manifest)
        version = manifest["format_version"]
    return manifest


def load_policy(folder: str | Path, *, keyring: Keyring | None = None) -> BasePolicy:
    """Load a policy saved by :func:`save_policy`, verifying every file's hash.

    ``keyring`` opens a sealed folder (decrypted into a scratch folder that is removed once the policy is loaded);
    a sealed folder without the key that sealed it is refused with a KeyNotFoundError naming the key.
    """
    import rlops.policies  # noqa: F401  (registers the built-in kinds)

    with plain_tree(Path(folder), keyring or _NO_KEYS) as plain:
        return _load_plain(plain)


def _load_plain(folder: Path) -> BasePolicy:
    manifest = read_manifest(folder)
    kind = manifest.get("kind")
    files = manifest.get("files", {})
    if not isinstance(kind, str) or not isinstance(files, dict):
        raise ConfigError(f"{folder / MANIFEST}: kind must be a string and files a mapping of name to hash")
    if kind not in _KINDS:
        raise ConfigError(f"{folder / MANIFEST}: kind: unknown policy kind {kind!r} (known: {sorted(_KINDS)})")
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise ConfigError(f"{folder}: file {name} listed in the manifest is missing")
        if _sha256(path) != expected:
            raise ConfigError(f"{folder}: file {name} does not match its hash in the manifest")
    if not isinstance(manifest.get("schema"), dict) or not isinstance(manifest.get("config", {}), dict):
        raise ConfigError(f"{folder / MANIFEST}: schema and config must be mappings")
    schema = Schema.from_dict(manifest["schema"], source=f"{folder / MANIFEST}: schema")
    try:
        policy = _KINDS[kind].from_saved(schema, dict(manifest.get("config", {})), folder)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{folder / MANIFEST}: config does not fit policy kind {kind!r}: {e!r}") from e
    if "preprocessing" not in manifest:
        return policy
    preprocessor = Preprocessor.from_dict(manifest["preprocessing"], source=f"{folder / MANIFEST}: preprocessing")
    if [c.name for c in preprocessor.columns] != list(schema.column_names):
        raise ConfigError(f"{folder / MANIFEST}: preprocessing was fitted for other columns than the schema's "
                          "(another schema, or another column order)")
    return with_preprocessing(policy, preprocessor)
