"""Where the event log's compacted Parquet parts live: any pyarrow filesystem, the local folder by default.

Segments need what only a local disk gives (``flock``, ``pwrite``, ``fdatasync``), so they always stay in the
event-log folder. Compacted parts need only whole-file writes, listing, reading and deleting, so they go through a
:class:`pyarrow.fs.FileSystem` named by a URI (``$RLOPS_EVENTS_URI``, or the ``parts_uri`` argument of
:class:`~rlops.events.log.EventLog`):

- none (the default): the local folder ``ROOT/parquet``, exactly as before;
- ``file:///srv/rlops/parts`` or an absolute path: another local folder;
- ``s3://bucket/prefix?region=eu-west-1``: S3 (credentials from the environment, as pyarrow reads them); any other
  scheme :meth:`pyarrow.fs.FileSystem.from_uri` knows (``gs://``, ``hdfs://``...) works the same way.

Under the location, decisions go to ``decisions/<stem>.parquet`` and outcomes to ``outcomes/<stem>.parquet``.

How a part is (re)placed so that readers see the old file or the new one, never half of one, which the commit rule
of :mod:`rlops.events.layout` needs:

- local filesystem: a hidden temporary file, ``fsync``, rename, ``fsync`` of the folder;
- S3 and Google Cloud Storage: written directly, because an object appears only when its upload completes (a
  crashed upload leaves no object; an incomplete multipart upload is invisible and a bucket lifecycle rule
  removes it);
- any other filesystem: a hidden temporary file, then ``move`` (a rename where the store has one).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rlops.errors import ConfigError
from rlops.files import fsync_dir

#: The environment variable naming where parts live (unset: ``ROOT/parquet``).
ENV_VAR = "RLOPS_EVENTS_URI"
PART_SUFFIX = ".parquet"
#: Suffix of the temporary file a part is written to before its rename.
TMP_SUFFIX = ".tmp"
#: Filesystems (``FileSystem.type_name``) whose writes of one object are atomic: an object appears whole or not at
#: all, so a part is written in place.
ATOMIC_PUT = frozenset({"s3", "gcs"})

Kind = Literal["decisions", "outcomes"]
KINDS: tuple[Kind, Kind] = ("decisions", "outcomes")


def _hidden(name: str) -> bool:
    return name.startswith(".")


@dataclass(frozen=True)
class PartStore:
    """The filesystem that holds an event log's Parquet parts.

    Attributes:
        fs: a filesystem rooted at the parts location (paths inside it are ``decisions/<stem>.parquet``).
        uri: where that is, for messages (a local folder's path, else the URI without its query).
        local: the folder, when the filesystem is the local one (then parts are written with ``fsync``).
        atomic_put: whether a part is written in place (object stores) rather than through a temporary file.
    """

    fs: pafs.FileSystem
    uri: str
    local: Path | None
    atomic_put: bool

    @classmethod
    def at(cls, root: Path, uri: str | None = None) -> PartStore:
        """The parts store of the event log in ``root``: ``uri``, else ``$RLOPS_EVENTS_URI``, else ``root/parquet``.

        Raises:
            ConfigError: the URI names no filesystem pyarrow can open (the message names the variable).
        """
        text = uri if uri is not None else os.environ.get(ENV_VAR) or None
        if text is None:
            folder = root / "parquet"
            return cls(pafs.SubTreeFileSystem(str(folder.absolute()), pafs.LocalFileSystem()), str(folder), folder,
                       False)
        try:
            base, path = pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OSError) as e:
            source = "parts_uri" if uri is not None else f"${ENV_VAR}"
            raise ConfigError(f"{source}: {text.split('?', 1)[0]!r} is not a filesystem URI pyarrow can open ({e}); "
                              "use a local path, file:///path, or s3://bucket/prefix?region=...") from e
        shown = text.split("?", 1)[0]  # a query may carry credentials
        if base.type_name == "local":
            folder = Path(path)
            return cls(pafs.SubTreeFileSystem(path, base), str(folder), folder, False)
        return cls(pafs.SubTreeFileSystem(path, base), shown, None, base.type_name in ATOMIC_PUT)

    @classmethod
    def of(cls, fs: pafs.FileSystem, uri: str, *, atomic_put: bool = False) -> PartStore:
        """A store on a filesystem already rooted at the parts location (a test's in-memory one, say)."""
        return cls(fs, uri, None, atomic_put)

    def ensure(self) -> None:
        """Create the folders where the filesystem has folders (raises OSError)."""
        if self.local is not None:
            for kind in KINDS:
                (self.local / kind).mkdir(parents=True, exist_ok=True)
        elif not self.atomic_put:  # object stores have no folders; making markers there needs rights for nothing
            for kind in KINDS:
                self.fs.create_dir(kind, recursive=True)

    def part(self, kind: Kind, stem: str) -> PartFile:
        return PartFile(self, kind, stem)

    def names(self, kind: Kind) -> list[pafs.FileInfo]:
        """Every file in the ``kind`` folder, temporary ones included (raises OSError)."""
        infos = self.fs.get_file_info(pafs.FileSelector(kind, allow_not_found=True))
        return [i for i in infos if i.type == pafs.FileType.File]

    def stems(self, kind: Kind) -> set[str]:
        """Stems of the parts of one kind (temporary files left out)."""
        return {i.base_name[: -len(PART_SUFFIX)] for i in self.names(kind)
                if i.base_name.endswith(PART_SUFFIX) and not _hidden(i.base_name)}

    def remove_hidden(self, kind: Kind, suffix: str, keep: Collection[str] = ()) -> int:
        """Delete the temporary files ``.<stem>.parquet<...><suffix>`` of one kind, except those of stems in
        ``keep``; returns how many (raises OSError)."""
        removed = 0
        for info in self.names(kind):
            name = info.base_name
            if not (_hidden(name) and name.endswith(suffix)):
                continue
            stem = name[1:].split(PART_SUFFIX, 1)[0]
            if stem in keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                self.fs.delete_file(info.path)
                removed += 1
        return removed

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True)
class PartFile:
    """One Parquet part (``<kind>/<stem>.parquet``) in a :class:`PartStore`.

    Attributes:
        store: where it lives.
        kind: ``decisions`` or ``outcomes``.
        stem: the stem of the segment it was compacted from.
    """

    store: PartStore
    kind: Kind
    stem: str

    @property
    def name(self) -> str:
        return f"{self.stem}{PART_SUFFIX}"

    @property
    def path(self) -> str:
        """Its path inside the store's filesystem."""
        return f"{self.kind}/{self.name}"

    @property
    def local(self) -> Path | None:
        """The file on the local disk, when the store is local."""
        return None if self.store.local is None else self.store.local / self.kind / self.name

    def __str__(self) -> str:
        local = self.local
        return str(local) if local is not None else f"{self.store.uri.rstrip('/')}/{self.path}"

    def exists(self) -> bool:
        """Whether the part exists (raises OSError)."""
        local = self.local
        if local is not None:
            return local.exists()
        return bool(self.store.fs.get_file_info(self.path).type == pafs.FileType.File)

    def size(self) -> int:
        """Its size in bytes (FileNotFoundError when it is gone)."""
        local = self.local
        if local is not None:
            return local.stat().st_size
        info = self.store.fs.get_file_info(self.path)
        if info.type != pafs.FileType.File or info.size is None:
            raise FileNotFoundError(str(self))
        return int(info.size)

    def head(self, n: int) -> bytes:
        """Its first ``n`` bytes (FileNotFoundError when it is gone)."""
        local = self.local
        if local is not None:
            with local.open("rb") as f:
                return f.read(n)
        with self.store.fs.open_input_stream(self.path) as f:
            return bytes(f.read(n))

    def read_bytes(self) -> bytes:
        """Its bytes (FileNotFoundError when it is gone)."""
        local = self.local
        if local is not None:
            return local.read_bytes()
        with self.store.fs.open_input_stream(self.path) as f:
            return bytes(f.read())

    def source(self) -> Path | pa.NativeFile:
        """What pyarrow reads it from: the local file, or a random-access file of the store (so a reader of the
        footer or of a few columns fetches only those ranges). FileNotFoundError when it is gone."""
        local = self.local
        if local is not None:
            return local
        return self.store.fs.open_input_file(self.path)

    def write(self, data: pa.Table | bytes) -> int:
        """Replace the part with ``data`` (a table, or a Parquet file's bytes) so that readers see the old file or
        the new one (see the module docstring); return its size (raises OSError)."""
        local = self.local
        if local is not None:
            return write_local(local, data)
        payload = data if isinstance(data, bytes) else _parquet_bytes(data)
        fs = self.store.fs
        if self.store.atomic_put:
            _put(fs, self.path, payload)
            return len(payload)
        tmp = f"{self.kind}/.{self.name}{TMP_SUFFIX}"
        _put(fs, tmp, payload)
        fs.move(tmp, self.path)
        return len(payload)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _put(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as out:
        out.write(data)


def write_local(path: Path, data: pa.Table | bytes) -> int:
    """Write ``data`` (bytes, or a table as Parquet) to ``path`` via a hidden temporary file, fsync, rename, fsync
    the folder; return the size (raises OSError)."""
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    with open(tmp, "wb") as f:
        if isinstance(data, bytes):
            f.write(data)
        else:
            pq.write_table(data, f)
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return size
