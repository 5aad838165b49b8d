"""The home folder: where one rlops installation keeps everything it stores.

The location is, in order: the explicit argument, ``$RLOPS_HOME``, ``./.rlops``. Nothing is created at import time;
:meth:`Home.ensure` creates the layout on first use. The metadata database is the folder's ``meta.db`` unless
``$RLOPS_METADATA_URL`` names another one (PostgreSQL: see docs/deploy.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rlops.errors import NotFoundError, StorageError

DEFAULT_HOME = ".rlops"
ENV_VAR = "RLOPS_HOME"
#: The metadata database's SQLAlchemy URL, when it is not the home folder's SQLite file (e.g. PostgreSQL).
METADATA_URL_VAR = "RLOPS_METADATA_URL"


@dataclass(frozen=True)
class Home:
    """Paths inside one home folder.

    Layout::

        HOME/
          meta.db            SQLite metadata: registry, deployments, API keys, audit chain, alerts (absent when
                             $RLOPS_METADATA_URL puts them in another database)
          events/            the durable event log (segments, then Parquet partitions)
          deployments/NAME/  artefacts of each deployment revision (schema, reward spec, policy folder)
          registry/NAME/vN/  registered model versions (policy, report, signed registration)
          keys/              the registry's signing key and the data key of encryption at rest (owner-only)
    """

    root: Path

    @classmethod
    def resolve(cls, path: str | os.PathLike[str] | None = None) -> Home:
        """Pick the home folder from ``path``, then ``$RLOPS_HOME``, then ``./.rlops``."""
        chosen = path if path is not None else os.environ.get(ENV_VAR) or DEFAULT_HOME
        return cls(Path(chosen).expanduser().absolute())

    @property
    def meta_db(self) -> Path:
        return self.root / "meta.db"

    @property
    def metadata_url(self) -> str:
        """The SQLAlchemy URL of the metadata database every store of this home uses.

        ``$RLOPS_METADATA_URL`` when set (e.g. ``postgresql+psycopg://rlops@db.internal/rlops``), read on each
        access rather than at import; else the SQLite file ``HOME/meta.db``.
        """
        return os.environ.get(METADATA_URL_VAR) or f"sqlite:///{self.meta_db}"

    @property
    def exists(self) -> bool:
        """Whether a home folder is here: its SQLite metadata file or its event log (which every home has)."""
        return self.meta_db.is_file() or self.events.is_dir()

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def deployments(self) -> Path:
        return self.root / "deployments"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    def require(self) -> Home:
        """Self, if this home folder exists; else a :class:`NotFoundError` saying how to create one."""
        if not self.exists:
            raise NotFoundError(f"no rlops home folder at {self.root} (create one with 'rlops init --home "
                                f"{self.root}', or pass --home)")
        return self

    def ensure(self) -> Home:
        """Create the folder layout if it is missing; return self.

        Raises:
            StorageError: the folder cannot be created (a file is in the way, no permission, disk full).
        """
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"home folder {self.root} is a file, not a folder; pass --home with another path")
        for folder in (self.root, self.events, self.deployments):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StorageError(f"home folder {self.root}: cannot create {folder}: {e.strerror or e}") from e
        return self
