"""Owner-only secret keys of a home folder (the audit, PII and erasure HMAC keys): from an environment variable, else
from a file under ``HOME/keys/`` that only its owner may read.

One loader, so every key follows the same rules: surrounding whitespace is not part of the key, a key is at least
:data:`MIN_KEY_BYTES` long, a key file readable by group or others is refused with the ``chmod`` that fixes it,
and a new key file is written whole (temporary file, fsync, hard link) and never replaces one another process made.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from rlops.errors import ConfigError, StorageError

#: Shortest key accepted, in bytes (``secrets.token_hex(32)`` gives 64).
MIN_KEY_BYTES = 32


def load_key(keys_dir: Path, *, env_var: str, file_name: str, what: str, create: bool,
             environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key in ``$env_var``, else in ``keys_dir/file_name``; made there (64 random hex digits, mode 0600) when
    missing and ``create``, else ``None``.

    Args:
        what: how messages name the key ("the PII key").

    Raises:
        ConfigError: the key is too short, or its file is readable by others.
        StorageError: the file cannot be read or written.
    """
    env = os.environ if environ is None else environ
    text, source = env.get(env_var), env_var
    if not text:
        path = keys_dir / file_name
        source = str(path)
        try:
            if not path.exists():
                if not create:
                    return None
                create_key_file(path)
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(f"{path}: {what} is readable by others (mode {stat.S_IMODE(mode):o}); run "
                                  f"'chmod 600 {path}'")
            text = path.read_text()
        except OSError as e:
            raise StorageError(f"{path}: cannot read {what}: {e.strerror or e}") from e
    key = text.strip().encode()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{source}: {what} has {len(key)} bytes; use at least {MIN_KEY_BYTES} (e.g. "
                          "python -c 'import secrets; print(secrets.token_hex(32))')")
    return key


def create_key_file(path: Path, *, replace_existing_is_error: bool = False) -> None:
    """Write 64 random hex digits to ``path`` (mode 0600, its folder 0700), whole or not at all.

    Raises:
        FileExistsError: ``path`` exists and ``replace_existing_is_error`` (otherwise a key another process made
            meanwhile is kept as it is).
        OSError: the file cannot be written.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if replace_existing_is_error:
            os.link(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
    finally:
        os.unlink(tmp)
