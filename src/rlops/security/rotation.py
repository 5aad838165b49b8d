"""The data keys of a home folder: which stored file is sealed with which key, and key rotation.

:func:`status` lists every file that encryption at rest covers (see ``docs/encryption.md``) with the key ids it is
sealed with, reading headers only. :func:`rotate` moves every such file under the current key:

1. it checks that every sealed file's key is configured (else KeyNotFoundError naming the file: nothing changed);
2. with a key file and one key, it writes a new key in front of the old one (synced, renamed into place): from
   now on new data is sealed with the new key, while the old one still opens what it sealed (running processes
   pick the new key up within :data:`rlops.encryption.RELOAD_S` seconds);
3. it re-encrypts every file not yet under the current key, plaintext ones included, each atomically (new file,
   fsync, rename, fsync folder), active segments excepted;
4. only when no file needs an old key any more does it remove the old keys from the key file.

Interrupting it at any point loses nothing: every file is whole and opens with a configured key. Running it
again resumes: a key file holding several keys means a rotation is unfinished, so no further key is made. With
``$RLOPS_DATA_KEY`` the keys cannot be changed from here: put the new key first (``NEW,OLD``), restart the
processes, run the rotation, then drop ``OLD``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from rlops import encryption
from rlops.encryption import (
    DataKey,
    DecryptionError,
    KeyNotFoundError,
    Keyring,
    KeySource,
    file_key_id,
    load_keyring,
    open_bytes,
    seal,
    write_durably,
    write_key_file,
)
from rlops.errors import ConfigError, ConflictError, StorageError
from rlops.events.layout import TAIL_SUFFIX, Layout
from rlops.events.parts import PartFile
from rlops.events.rekey import Rekeyed, part_key_id, rekey_file, rekey_segment, remove_leftovers, segment_keys
from rlops.home import Home
from rlops.registry.artifact import REGISTRATION, SIGNATURE
from rlops.security import audit
from rlops.security.audit import AuditAction

#: Folder (inside the home) for the temporary files of artefact rewrites, kept out of the version folders.
SCRATCH = ".rekey"
#: Sub-folders of ``HOME/deployments/NAME`` that hold policy folders saved by rlops.
POLICY_FOLDERS = ("policies", "learned")


class FileKind(StrEnum):
    """What a stored file is."""

    SEGMENT = "segment"
    PART = "parquet part"
    TAIL = "quarantined tail"
    ARTIFACT = "registry file"
    POLICY = "deployment policy file"


@dataclass(frozen=True)
class StoredFile:
    """One file encryption covers, and the keys it is sealed with.

    Attributes:
        path: the file (a Parquet part may live on another filesystem than the home's: see
            :mod:`rlops.events.parts`).
        kind: what it is.
        keys: ids of the keys its content is sealed with; ``None`` in it stands for plaintext (a plaintext file,
            plaintext frames of a segment, or unreadable tail bytes after a segment's last frame).
        active: a segment a live writer holds (a rotation cannot rewrite it).
    """

    path: Path | PartFile
    kind: FileKind
    keys: frozenset[str | None]
    active: bool = False

    def under(self, key_id: str) -> bool:
        """Whether everything in it is sealed with ``key_id`` (a segment with no frames counts as such)."""
        return self.keys <= {key_id}


@dataclass(frozen=True)
class EncryptionStatus:
    """Every covered file of a home folder and its keys, at one moment.

    Attributes:
        keyring: the configured keys.
        files: the files, events first.
    """

    keyring: Keyring
    files: tuple[StoredFile, ...]

    def counts(self) -> dict[FileKind, Counter[str | None]]:
        """Per kind, how many files use each key id (None: plaintext); a file with several keys counts under each."""
        out: dict[FileKind, Counter[str | None]] = {kind: Counter() for kind in FileKind}
        for f in self.files:
            out[f.kind].update(f.keys or {self.keyring.current.key_id if self.keyring.enabled else None})
        return out

    def pending(self) -> list[StoredFile]:
        """Files not entirely under the current key (everything, when no key is configured)."""
        if not self.keyring.enabled:
            return [f for f in self.files if f.keys]
        current = self.keyring.current.key_id
        return [f for f in self.files if not f.under(current)]

    def using(self, key_id: str | None) -> list[StoredFile]:
        """Files with content sealed with ``key_id`` (None: with plaintext content)."""
        return [f for f in self.files if key_id in f.keys]

    def unknown_keys(self) -> dict[str, Path | PartFile]:
        """Key ids some file needs that are not configured, each with the first such file."""
        known = set(self.keyring.key_ids)
        out: dict[str, Path | PartFile] = {}
        for f in self.files:
            for k in f.keys:
                if k is not None and k not in known:
                    out.setdefault(k, f.path)
        return out


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _tree(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from sorted(p for p in folder.rglob("*") if p.is_file() and _visible(p, folder))


def _artefacts(home: Home) -> Iterator[tuple[Path, FileKind]]:
    for path in _tree(home.registry):
        if path.name not in (REGISTRATION, SIGNATURE):
            yield path, FileKind.ARTIFACT
    if home.deployments.is_dir():
        for deployment in sorted(home.deployments.iterdir()):
            for sub in POLICY_FOLDERS:
                for path in _tree(deployment / sub):
                    yield path, FileKind.POLICY


def status(home: Home, keyring: Keyring | None = None) -> EncryptionStatus:
    """Every file of ``home`` that encryption covers, with the keys it is sealed with (headers only; segments are
    read but not decrypted).

    Args:
        home: the home folder.
        keyring: the configured keys (default: :func:`rlops.encryption.load_keyring` of the home).

    Raises:
        StorageError: a file cannot be read.
    """
    keys = load_keyring(home.keys) if keyring is None else keyring
    files: list[StoredFile] = []
    layout = Layout(home.events)
    try:
        for stem in layout.segment_stems():
            found = segment_keys(layout, stem)
            if found is not None:
                tail = {None} if found.tail_bytes else set()
                files.append(StoredFile(layout.segment(stem), FileKind.SEGMENT, found.keys | tail, found.active))
        parts = [*(layout.decision_part(s) for s in sorted(layout.decision_part_stems())),
                 *(layout.outcome_part(s) for s in sorted(layout.outcome_part_stems()))]
        tails = sorted(layout.quarantine.glob(f"*{TAIL_SUFFIX}")) if layout.quarantine.is_dir() else []
        candidates: list[tuple[Path | PartFile, FileKind]] = [
            *((p, FileKind.PART) for p in parts), *((p, FileKind.TAIL) for p in tails), *_artefacts(home)]
        for path, kind in candidates:
            try:
                files.append(StoredFile(path, kind, frozenset({part_key_id(path)})))
            except FileNotFoundError:
                continue  # compacted, rewritten or removed since the listing
    except OSError as e:
        raise StorageError(f"cannot read the files of {home.root}: {e.strerror or e}") from e
    return EncryptionStatus(keys, tuple(files))


# ---- init ----


def create_key(home: Home) -> DataKey:
    """Create ``HOME/keys/data_key`` with a fresh key (mode 0600) and return the key.

    Files written from then on are sealed; files written before stay plaintext and readable until
    :func:`rotate` seals them.

    Raises:
        ConflictError: a key file exists already.
        StorageError: it cannot be written.
    """
    key = DataKey.generate()
    write_key_file(home.keys, [key], create=True)
    audit.record(home, _actor(), AuditAction.CONFIG_CHANGE, "encryption:data_key",
                 {"change": "encryption enabled", "key_id": key.key_id})
    return key


def _actor() -> str:
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):
        return "unknown"


# ---- rotation ----


@dataclass(frozen=True)
class RotationResult:
    """What :func:`rotate` did.

    Attributes:
        key_id: the current key afterwards.
        created: whether it made that key (False: it resumed an unfinished rotation, or the keys come from the
            environment, or it was asked not to).
        rekeyed: files rewritten under the current key.
        active: active segments it could not rewrite (their writer still holds them).
        damaged: files it could not rewrite because they fail their authentication tag (restore them).
        remaining: files still not entirely under the current key at the end.
        retired: old key ids removed from the key file.
        kept: old key ids some file still needs (kept configured).
        removable: old key ids in ``$RLOPS_DATA_KEY`` that no file needs any more (remove them there).
    """

    key_id: str
    created: bool
    rekeyed: int
    active: list[Path | PartFile] = field(default_factory=list)
    damaged: list[Path | PartFile] = field(default_factory=list)
    remaining: list[StoredFile] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removable: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every covered file is under the current key and no file needs an old key."""
        return not self.remaining and not self.kept


#: ``progress(done, total, path)`` after each file of a pass.
Progress = Callable[[int, int, Path | PartFile], None]


@contextlib.contextmanager
def _rotation_lock(home: Home) -> Iterator[None]:
    home.keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(home.keys / ".rotation.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise ConflictError(f"{home.keys}: another key rotation is running on this home folder") from e
        yield
    finally:
        os.close(fd)


def _rekey_artefact(path: Path, keyring: Keyring, scratch: Path) -> Rekeyed:
    try:
        if file_key_id(path) == keyring.current.key_id:
            return Rekeyed.CURRENT
        data = path.read_bytes()
    except FileNotFoundError:
        return Rekeyed.GONE
    sealed = seal(open_bytes(data, keyring, str(path)), keyring)
    try:
        write_durably(path, sealed, tmp_dir=scratch)  # the version folder never holds an extra file
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        write_durably(path, sealed)  # the folder is on another filesystem than the home
    return Rekeyed.DONE


def _rekey(home: Home, layout: Layout, f: StoredFile, keyring: Keyring) -> Rekeyed:
    if f.kind is FileKind.SEGMENT:
        return rekey_segment(layout, f.path.name[: -len(".seg")], keyring)
    if f.kind in (FileKind.PART, FileKind.TAIL) or isinstance(f.path, PartFile):
        return rekey_file(layout, f.path, keyring)
    return _rekey_artefact(f.path, keyring, home.root / SCRATCH)


def rotate(home: Home, *, new_key: bool = True, progress: Progress | None = None,
           environ: Mapping[str, str] | None = None, settle_s: float | None = None) -> RotationResult:
    """Rotate the data key of ``home`` and re-encrypt every covered file under it (see the module docstring).

    Args:
        home: the home folder.
        new_key: make a new key when the key file holds one (default). False: only move every file under the
            current key (seal plaintext files, finish what an old key still holds).
        progress: called after each file.
        environ: the environment to read the keys from (default ``os.environ``).
        settle_s: after making a new key, wait at least this long (seconds) before the last check, so that
            processes still sealing with the old key have picked up the new one (default: twice
            :data:`rlops.encryption.RELOAD_S`).

    Returns:
        What it did; :attr:`RotationResult.complete` says whether the old keys could be retired.

    Raises:
        ConfigError: no data key is configured.
        KeyNotFoundError: a file is sealed with a key that is not configured (nothing was changed).
        ConflictError: another rotation is running.
        StorageError: a file or the key file could not be written (run it again).
    """
    with _rotation_lock(home):
        keyring = load_keyring(home.keys, environ=environ)
        if not keyring.enabled:
            raise ConfigError(f"no data key is configured for {home.root}: run 'rlops encryption init' (or set "
                              "RLOPS_DATA_KEY) first")
        unknown = status(home, keyring).unknown_keys()
        if unknown:
            key_id, path = next(iter(unknown.items()))
            raise KeyNotFoundError(key_id, keyring.key_ids, str(path))
        created = False
        settled_at = 0.0
        if keyring.source is KeySource.FILE and new_key and len(keyring.keys) == 1:
            write_key_file(home.keys, [DataKey.generate(), *keyring.keys])
            keyring = load_keyring(home.keys, environ=environ)
            created = True
            settled_at = time.monotonic() + (2 * encryption.RELOAD_S if settle_s is None else settle_s)
        layout = Layout(home.events)
        scratch = home.root / SCRATCH
        try:
            remove_leftovers(layout)
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(mode=0o700, exist_ok=True)
            rekeyed, active, damaged = _passes(home, layout, keyring, progress, settled_at)
        except OSError as e:
            if isinstance(e, StorageError):
                raise
            raise StorageError(f"key rotation of {home.root} stopped: {e.strerror or e}; nothing was lost: run it "
                               "again to finish") from e
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        final = status(home, keyring)
        current = keyring.current.key_id
        old = keyring.key_ids[1:]
        needed = {k for f in final.files for k in f.keys}
        retired: list[str] = []
        if keyring.source is KeySource.FILE and old and not needed & set(old):
            write_key_file(home.keys, [keyring.current])
            retired = old
        unused = [k for k in old if k not in needed and k not in retired]
        result = RotationResult(current, created, rekeyed, active, damaged, final.pending(), retired,
                                [k for k in old if k in needed], unused)
        audit.record(home, _actor(), AuditAction.CONFIG_CHANGE, "encryption:data_key",
                     {"change": "key rotation", "key_id": current, "created": created, "rekeyed": rekeyed,
                      "retired": retired, "complete": result.complete})
        return result


#: Passes over the files at most: later passes catch files written meanwhile under the old key.
PASSES = 3


def _passes(home: Home, layout: Layout, keyring: Keyring, progress: Progress | None,
            settled_at: float) -> tuple[int, list[Path | PartFile], list[Path | PartFile]]:
    rekeyed = 0
    active: list[Path | PartFile] = []
    damaged: list[Path | PartFile] = []
    for n in range(PASSES):
        active, damaged = [], []
        pending = status(home, keyring).pending()
        for i, f in enumerate(pending, 1):
            try:
                outcome = _rekey(home, layout, f, keyring)
            except DecryptionError:
                damaged.append(f.path)
                outcome = Rekeyed.CURRENT
            if outcome is Rekeyed.DONE:
                rekeyed += 1
            elif outcome is Rekeyed.ACTIVE:
                active.append(f.path)
            if progress is not None:
                progress(i, len(pending), f.path)
        if n == 0:
            time.sleep(max(0.0, settled_at - time.monotonic()))
        elif len(pending) == len(active) + len(damaged):
            break  # nothing more that a pass can do
    return rekeyed, active, damaged
