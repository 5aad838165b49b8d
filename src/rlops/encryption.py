"""Encryption at rest: data keys, the keyring, and the two sealed formats (event-log payloads and whole files).

Off unless a data key is configured; then the event log and the policy artefacts of a home folder are written
encrypted with AES-256-GCM (NIST SP 800-38D, via ``cryptography``), each message with its own random 96-bit nonce.
The keys are, in order:

1. ``$RLOPS_DATA_KEY``: ``KEY[,OLD_KEY...]``, each the base64 of 32 random bytes; or
2. ``HOME/keys/data_key``: one base64 key per line (``#`` starts a comment), mode 0600; a key file readable by the
   group or others is refused.

The first key is the *current* one: it encrypts everything written from now on. The others only decrypt; they are
kept while :mod:`rlops.security.rotation` re-encrypts what they sealed. A key's id (:attr:`DataKey.key_id`, 16 hex
digits of a SHA-256 of the key) is written in front of every message, so each file says which key sealed it, and a
missing key is named in the error.

Two formats (see ``docs/encryption.md``):

- *payload envelope* (one event-log frame): ``<8-byte key id> <12-byte nonce> <ciphertext and 16-byte tag>``; the
  caller passes the associated data (the frame's kind and counts).
- *sealed file* (Parquet parts, artefacts): ``MAGIC <8-byte key id> <u32 chunk size>`` then chunks of
  ``<12-byte nonce> <ciphertext and tag>``, each of :data:`CHUNK_BYTES` plaintext bytes but the last, which is
  shorter (possibly empty). Each chunk authenticates the header, its index and whether it is the last, so chunks
  cannot be reordered, dropped or the file cut short without the check failing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import shutil
import stat
import struct
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from rlops.errors import ConfigError, ConflictError, StorageError
from rlops.files import fsync_dir

ENV_VAR = "RLOPS_DATA_KEY"
KEY_FILE = "data_key"
KEY_BYTES = 32
KEY_ID_BYTES = 8
NONCE_BYTES = 12
TAG_BYTES = 16
#: Bytes an envelope adds to a payload: key id, nonce and tag.
ENVELOPE_OVERHEAD = KEY_ID_BYTES + NONCE_BYTES + TAG_BYTES
#: First bytes of a sealed file (format name and version).
FILE_MAGIC = b"RLOPSAE1"
_FILE_HEADER = struct.Struct("<8s8sI")
FILE_HEADER_BYTES = _FILE_HEADER.size
#: Plaintext bytes per chunk of a sealed file.
CHUNK_BYTES = 1 << 20
_CHUNK_AAD = struct.Struct("<QB")
#: How often (seconds) a :class:`KeyWatch` looks at the key file for a change.
RELOAD_S = 1.0
#: AES-GCM in ``cryptography`` takes at most this many bytes per message.
MAX_MESSAGE = 2**31 - 1 - TAG_BYTES


class KeyNotFoundError(ConfigError):
    """Data was sealed with a key that is not configured (or no key is configured at all).

    Attributes:
        key_id: the id of the key the data needs.
        where: the file or frame that needs it ("" when unknown).
    """

    def __init__(self, key_id: str, configured: Sequence[str], where: str = "") -> None:
        self.key_id = key_id
        self.configured = tuple(configured)
        self.where = where
        have = (f"the configured data keys are {', '.join(self.configured)}" if self.configured
                else "no data key is configured")
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}encrypted with data key {key_id}, which is not available ({have}); set "
                         f"{ENV_VAR} or restore HOME/keys/{KEY_FILE} with that key (see 'rlops encryption status')")

    def at(self, where: str | os.PathLike[str]) -> KeyNotFoundError:
        """The same error, naming the file that needs the key."""
        return KeyNotFoundError(self.key_id, self.configured, str(where))

    def __reduce__(self) -> tuple[type[KeyNotFoundError], tuple[str, tuple[str, ...], str]]:
        return (type(self), (self.key_id, self.configured, self.where))


class DecryptionError(StorageError):
    """Sealed data fails its authentication tag: it was changed or damaged after it was written."""


def _key_id(secret: bytes) -> bytes:
    return hashlib.sha256(b"rlops data key\0" + secret).digest()[:KEY_ID_BYTES]


@dataclass(frozen=True, eq=False)
class DataKey:
    """One AES-256 key.

    Attributes:
        secret: the 32 key bytes.
        raw_id: its 8-byte id, as written in front of what it seals.
    """

    secret: bytes = field(repr=False)
    raw_id: bytes = field(init=False)
    _aead: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ConfigError(f"a data key has {KEY_BYTES} bytes, not {len(self.secret)}")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # imported on first use: it is not small

        object.__setattr__(self, "raw_id", _key_id(self.secret))
        object.__setattr__(self, "_aead", AESGCM(self.secret))

    @property
    def key_id(self) -> str:
        """16 hex digits naming the key (safe to show: it reveals nothing about the key)."""
        return self.raw_id.hex()

    @classmethod
    def generate(cls) -> DataKey:
        """A fresh random key."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_base64(cls, text: str, source: str) -> DataKey:
        """Parse a base64 key; ``source`` names where it came from in the error."""
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as e:
            raise ConfigError(f"{source}: not valid base64 (a data key is the base64 of {KEY_BYTES} random "
                              "bytes; 'rlops encryption init --print' makes one)") from e
        if len(raw) != KEY_BYTES:
            raise ConfigError(f"{source}: a data key decodes to {len(raw)} bytes; it must have {KEY_BYTES}")
        return cls(raw)

    def to_base64(self) -> str:
        """The key as ``$RLOPS_DATA_KEY`` and the key file hold it. Keep it secret."""
        return base64.b64encode(self.secret).decode()

    def encrypt(self, data: bytes | memoryview, aad: bytes) -> bytes:
        """``nonce + ciphertext + tag`` of ``data`` with a fresh random nonce."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, aad)  # type: ignore[no-any-return]

    def decrypt(self, sealed: bytes | memoryview, aad: bytes) -> bytes:
        """Inverse of :meth:`encrypt` (raises ``cryptography.exceptions.InvalidTag``)."""
        view = memoryview(sealed)
        return self._aead.decrypt(view[:NONCE_BYTES], view[NONCE_BYTES:], aad)  # type: ignore[no-any-return]


class KeySource(StrEnum):
    """Where a keyring's keys came from."""

    NONE = "none"
    ENVIRONMENT = "environment"
    FILE = "file"


@dataclass(frozen=True)
class Keyring:
    """The current data key plus older ones still needed to decrypt; empty means encryption is off.

    Attributes:
        keys: the current key first, then the older ones.
        source: where they came from.
        path: the key file, when they came from one.
    """

    keys: tuple[DataKey, ...] = ()
    source: KeySource = KeySource.NONE
    path: Path | None = None
    _by_id: dict[bytes, DataKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [k.raw_id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"{self.path or ENV_VAR}: the same data key is listed twice")
        object.__setattr__(self, "_by_id", {k.raw_id: k for k in self.keys})

    @property
    def enabled(self) -> bool:
        """Whether new data is encrypted (a key is configured)."""
        return bool(self.keys)

    @property
    def current(self) -> DataKey:
        """The key that seals new data (ConfigError when none is configured)."""
        if not self.keys:
            raise ConfigError(f"no data key is configured (set {ENV_VAR} or run 'rlops encryption init')")
        return self.keys[0]

    @property
    def key_ids(self) -> list[str]:
        """Ids of every key, the current one first."""
        return [k.key_id for k in self.keys]

    def find(self, raw_id: bytes | memoryview, where: str = "") -> DataKey:
        """The key with this 8-byte id (KeyNotFoundError naming it when it is not here)."""
        found = self._by_id.get(bytes(raw_id))
        if found is None:
            raise KeyNotFoundError(bytes(raw_id).hex(), self.key_ids, where)
        return found

    # ---- payload envelopes ----

    def seal(self, data: bytes | memoryview, aad: bytes = b"") -> bytes:
        """``data`` as an envelope sealed with the current key: key id, nonce, ciphertext and tag."""
        key = self.current
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"{len(data):,} bytes is more than one encrypted message holds ({MAX_MESSAGE:,})")
        return key.raw_id + key.encrypt(data, aad)

    def open(self, envelope: bytes | memoryview, aad: bytes = b"", where: str = "") -> bytes:
        """The plaintext of an envelope (KeyNotFoundError: its key is not here; DecryptionError: tampered)."""
        from cryptography.exceptions import InvalidTag

        view = memoryview(envelope)
        if len(view) < ENVELOPE_OVERHEAD:
            raise DecryptionError(f"{where or 'data'}: an encrypted payload of {len(view)} bytes is too short")
        key = self.find(view[:KEY_ID_BYTES], where)
        try:
            return key.decrypt(view[KEY_ID_BYTES:], aad)
        except InvalidTag as e:
            raise DecryptionError(f"{where or 'data'}: fails its authentication tag (key {key.key_id}): it was "
                                  "changed or damaged after it was written") from e


def envelope_key_id(envelope: bytes | memoryview) -> str:
    """The id of the key that sealed an envelope."""
    return bytes(memoryview(envelope)[:KEY_ID_BYTES]).hex()


# ---- keys: loading, creating ----


def _parse_keys(lines: Sequence[str], source: str) -> tuple[DataKey, ...]:
    keys = []
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if text:
            keys.append(DataKey.from_base64(text, f"{source} (key {n})"))
    return tuple(keys)


def load_keyring(keys_dir: Path | None, *, environ: Mapping[str, str] | None = None) -> Keyring:
    """The data keys: ``$RLOPS_DATA_KEY`` if set, else ``keys_dir/data_key`` if it exists, else none (off).

    Args:
        keys_dir: ``HOME/keys`` (None: only the environment).
        environ: the environment to read (default ``os.environ``).

    Raises:
        ConfigError: a key is not the base64 of 32 bytes, a key is listed twice, or the key file is readable by
            the group or others.
        StorageError: the key file cannot be read.
    """
    env = os.environ if environ is None else environ
    text = env.get(ENV_VAR)
    if text:
        keys = _parse_keys(text.split(","), ENV_VAR)
        if keys:
            return Keyring(keys, KeySource.ENVIRONMENT)
    if keys_dir is None:
        return Keyring()
    path = keys_dir / KEY_FILE
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return Keyring()
    except OSError as e:
        raise StorageError(f"{path}: cannot read the data key: {e.strerror or e}") from e
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: the data key is readable by others (mode {stat.S_IMODE(mode):o}); "
                          f"run 'chmod 600 {path}'")
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise StorageError(f"{path}: cannot read the data key: {e.strerror or e}") from e
    keys = _parse_keys(lines, str(path))
    if not keys:
        raise ConfigError(f"{path}: holds no data key (delete it to turn encryption off, or run 'rlops encryption "
                          "init' after deleting it)")
    return Keyring(keys, KeySource.FILE, path)


_KEY_FILE_HEADER = ("# rlops data keys (AES-256, base64). The first encrypts new data; the others only decrypt\n"
                    "# what they encrypted until 'rlops encryption rotate' re-encrypts it. Never edit by hand\n"
                    "# while a rotation runs, and never lose a key that still has files (see 'rlops encryption "
                    "status').\n")


def write_key_file(keys_dir: Path, keys: Sequence[DataKey], *, create: bool = False) -> Path:
    """Write ``keys`` (the current first) to ``keys_dir/data_key``: mode 0600, synced, renamed into place.

    Args:
        keys_dir: ``HOME/keys`` (created 0700 if missing).
        keys: at least one key.
        create: refuse (ConflictError) if the file exists already, instead of replacing it.

    Raises:
        ConflictError: ``create`` and the file exists.
        StorageError: the file cannot be written.
    """
    if not keys:
        raise ValueError("a key file holds at least one key")
    path = keys_dir / KEY_FILE
    text = _KEY_FILE_HEADER + "".join(f"{k.to_base64()}  # {k.key_id}\n" for k in keys)
    try:
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{KEY_FILE}.", dir=keys_dir)  # created 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            if create:
                os.link(tmp, path)  # atomic, never replaces
            else:
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_dir(keys_dir)
    except FileExistsError as e:
        raise ConflictError(f"{path}: a data key exists already (see 'rlops encryption status'; 'rlops encryption "
                            "rotate' replaces it safely)") from e
    except OSError as e:
        raise StorageError(f"{path}: cannot write the data key: {e.strerror or e}") from e
    return path


class KeyWatch:
    """A keyring that follows its key file: :meth:`get` re-reads the file when it changed, at most every
    :data:`RELOAD_S` seconds, so a running process picks up a rotated key without a restart.

    Args:
        keys_dir: ``HOME/keys`` (None: only ``$RLOPS_DATA_KEY``).
        fixed: use this keyring and never reload.

    A key file that becomes unreadable or is deleted while the process runs keeps the last good keyring (new data
    is never silently written unencrypted); the error is raised again by the next explicit :func:`load_keyring`.
    """

    def __init__(self, keys_dir: Path | None, *, fixed: Keyring | None = None) -> None:
        self._keys_dir = keys_dir
        self._fixed = fixed is not None
        self._checked = time.monotonic()
        self._stamp = self._file_stamp()
        self._lock = threading.Lock()
        self._keyring = fixed if fixed is not None else load_keyring(keys_dir)
        if self._keyring.source is KeySource.ENVIRONMENT:
            self._fixed = True  # the environment does not change under a running process

    def _file_stamp(self) -> tuple[int, int, int] | None:
        if self._keys_dir is None:
            return None
        try:
            st = os.stat(self._keys_dir / KEY_FILE)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def get(self) -> Keyring:
        """The keyring, reloaded first if the key file changed (checked at most every RELOAD_S seconds)."""
        if self._fixed or time.monotonic() - self._checked < RELOAD_S:
            return self._keyring
        with self._lock:
            if time.monotonic() - self._checked >= RELOAD_S:
                stamp = self._file_stamp()
                if stamp != self._stamp and stamp is not None:
                    with contextlib.suppress(ConfigError, StorageError):
                        self._keyring = load_keyring(self._keys_dir)
                        self._stamp = stamp
                self._checked = time.monotonic()
        return self._keyring


# ---- sealed files ----


def is_sealed(head: bytes | memoryview) -> bool:
    """Whether bytes starting with ``head`` are a sealed file."""
    return bytes(head[: len(FILE_MAGIC)]) == FILE_MAGIC


def seal(data: bytes | memoryview, keyring: Keyring) -> bytes:
    """``data`` as a sealed file under the current key, or ``data`` unchanged when encryption is off."""
    if not keyring.enabled:
        return bytes(data)
    key = keyring.current
    header = _FILE_HEADER.pack(FILE_MAGIC, key.raw_id, CHUNK_BYTES)
    view = memoryview(data)
    out = [header]
    index = 0
    while True:
        chunk = view[index * CHUNK_BYTES : (index + 1) * CHUNK_BYTES]
        last = len(chunk) < CHUNK_BYTES
        out.append(key.encrypt(chunk, header + _CHUNK_AAD.pack(index, last)))
        if last:
            return b"".join(out)
        index += 1


def file_key_id(path: Path) -> str | None:
    """The id of the key that sealed ``path``, or None if it is plaintext (raises OSError)."""
    with path.open("rb") as f:
        head = f.read(FILE_HEADER_BYTES)
    if not is_sealed(head) or len(head) < FILE_HEADER_BYTES:
        return None
    return head[len(FILE_MAGIC) : len(FILE_MAGIC) + KEY_ID_BYTES].hex()


def _open_chunks(f: BinaryIO, head: bytes, keyring: Keyring, where: str) -> Iterator[bytes]:
    """Decrypt a sealed file's chunks after its header ``head`` (already read from ``f``)."""
    from cryptography.exceptions import InvalidTag

    if len(head) < FILE_HEADER_BYTES:
        raise DecryptionError(f"{where}: a sealed file cut short inside its header")
    _, raw_id, chunk_bytes = _FILE_HEADER.unpack(head)
    key = keyring.find(raw_id, where)
    record = NONCE_BYTES + chunk_bytes + TAG_BYTES
    index = 0
    block = f.read(record)
    while True:
        following = f.read(record) if len(block) == record else b""
        last = not following
        if len(block) < NONCE_BYTES + TAG_BYTES or (last and len(block) == record):
            raise DecryptionError(f"{where}: a sealed file cut short (chunk {index}); it was truncated or damaged "
                                  "after it was written")
        try:
            yield key.decrypt(block, head + _CHUNK_AAD.pack(index, last))
        except InvalidTag as e:
            raise DecryptionError(f"{where}: fails its authentication tag (key {key.key_id}, chunk {index}): it "
                                  "was changed or damaged after it was written") from e
        if last:
            return
        block = following
        index += 1


def open_bytes(data: bytes, keyring: Keyring, where: str = "") -> bytes:
    """The plaintext of a sealed file's bytes; plaintext bytes are returned unchanged."""
    if not is_sealed(data):
        return data
    import io

    f = io.BytesIO(data)
    head = f.read(FILE_HEADER_BYTES)
    return b"".join(_open_chunks(f, head, keyring, where))


def iter_plain(path: Path, keyring: Keyring) -> Iterator[bytes]:
    """A file's plaintext in chunks, sealed or not (raises OSError, KeyNotFoundError, DecryptionError)."""
    with path.open("rb") as f:
        head = f.read(FILE_HEADER_BYTES)
        if is_sealed(head):
            yield from _open_chunks(f, head, keyring, str(path))
            return
        yield head
        while chunk := f.read(CHUNK_BYTES):
            yield chunk


def read_plain(path: Path, keyring: Keyring) -> bytes:
    """A file's plaintext, sealed or not (raises OSError, KeyNotFoundError, DecryptionError)."""
    return b"".join(iter_plain(path, keyring))


def sha256_plain(path: Path, keyring: Keyring) -> str:
    """The hex SHA-256 of a file's plaintext: the same before and after sealing or re-sealing."""
    digest = hashlib.sha256()
    for chunk in iter_plain(path, keyring):
        digest.update(chunk)
    return digest.hexdigest()


def write_durably(path: Path, data: bytes, *, tmp_dir: Path | None = None) -> int:
    """Write ``data`` to ``path`` via a synced temporary file and a rename, then sync the folder; return its size.

    Args:
        path: the file to (re)place.
        data: its new bytes.
        tmp_dir: where the temporary file goes (default: next to ``path``; it must be on the same filesystem).
    """
    folder = path.parent if tmp_dir is None else tmp_dir
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".rekey", dir=folder)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.fchmod(fd, stat.S_IMODE(path.stat().st_mode))  # keep the mode a replaced file had
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return len(data)


# ---- folders of files (policy artefacts) ----


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def tree_is_sealed(folder: Path) -> bool:
    """Whether any file under ``folder`` is sealed."""
    for path in _files(folder):
        with path.open("rb") as f:
            if is_sealed(f.read(len(FILE_MAGIC))):
                return True
    return False


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A private (0700) temporary folder outside any home folder, in RAM (``/dev/shm``) where there is one: where
    plaintext lives while a sealed policy loads or a policy is sealed. Removed on exit."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="rlops-plain-", dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def copy_tree(source: Path, target: Path, keyring: Keyring, *, symlinks: bool = False) -> None:
    """Copy a folder's files to ``target``, each sealed under the current key (decrypted first if it was sealed);
    without a key, ``shutil.copytree(source, target, symlinks=symlinks, dirs_exist_ok=True)``. Sealed copies
    follow symbolic links (the copy holds the target's content)."""
    if not keyring.enabled:
        shutil.copytree(source, target, symlinks=symlinks, dirs_exist_ok=True)
        return
    target.mkdir(parents=True, exist_ok=True)
    for path in _files(source):
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(seal(read_plain(path, keyring), keyring))


@contextlib.contextmanager
def sealing_into(target: Path, keyring: Keyring) -> Iterator[Path]:
    """Where to write files that should end up sealed in ``target``: ``target`` itself without a key; else a
    :func:`scratch_dir` whose files are sealed into ``target`` when the block ends without an error, so plaintext
    never touches the home folder's disk.

    Example:
        >>> with sealing_into(staging, keyring) as work:  # doctest: +SKIP
        ...     policy.save_files(work)
    """
    if not keyring.enabled:
        yield target
        return
    with scratch_dir() as scratch:
        work = scratch / "files"
        work.mkdir()
        yield work
        copy_tree(work, target, keyring)


def seal_tree(folder: Path, keyring: Keyring) -> None:
    """Seal every plaintext file under ``folder`` in place (no-op without a key). For a folder not yet in place
    (staging); each file is replaced by a rename, so a crash leaves each file whole."""
    if not keyring.enabled:
        return
    for path in _files(folder):
        data = path.read_bytes()
        if not is_sealed(data):
            tmp = path.with_name(f".{path.name}.seal")
            tmp.write_bytes(seal(data, keyring))
            os.replace(tmp, path)


@contextlib.contextmanager
def plain_tree(folder: Path, keyring: Keyring) -> Iterator[Path]:
    """``folder`` itself if none of its files is sealed, else a decrypted copy in a :func:`scratch_dir` (removed
    on exit). Raises KeyNotFoundError or DecryptionError naming the file."""
    if not tree_is_sealed(folder):
        yield folder
        return
    with scratch_dir() as scratch:
        plain = scratch / folder.name
        plain.mkdir()
        for path in _files(folder):
            out = plain / path.relative_to(folder)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(read_plain(path, keyring))
        yield plain


@contextlib.contextmanager
def plain_file(path: Path, keyring: Keyring) -> Iterator[Path]:
    """``path`` itself if it is plaintext, else a decrypted copy in a :func:`scratch_dir` (removed on exit)."""
    with path.open("rb") as f:
        sealed = is_sealed(f.read(len(FILE_MAGIC)))
    if not sealed:
        yield path
        return
    with scratch_dir() as scratch:
        out = scratch / path.name
        out.write_bytes(read_plain(path, keyring))
        yield out
