"""The model registry: versions of policies with lineage, signed artefacts and stages.

Example:
    >>> from rlops.home import Home
    >>> with Registry(Home.resolve("/tmp/h").ensure()) as registry:  # doctest: +SKIP
    ...     v = registry.register("pricing", "trained/policy", lineage=Lineage(scenario="pricing-v2"))
    ...     registry.transition("pricing", v.version, Stage.CANARY, reason="offline gates passed")
    ...     policy = registry.load("pricing", v.version)  # verified: signature, every file's hash
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from rlops.encryption import Keyring, KeyWatch, plain_file, plain_tree, read_plain, sealing_into
from rlops.errors import ConfigError, ConflictError, NotFoundError, StorageError, ValidationError
from rlops.home import Home
from rlops.policies.base import BasePolicy
from rlops.policies.io import content_hash, load_policy, read_manifest
from rlops.registry.artifact import POLICY, REFERENCE, REPORT, fsync_path, fsync_tree, sign_folder, verify_folder
from rlops.registry.artifact import file_hashes as _file_hashes
from rlops.registry.diff import Change, VersionDetails, diff_versions
from rlops.registry.lineage import Lineage
from rlops.registry.refs import ModelRef, check_name
from rlops.registry.signing import SigningKey, load_signing_key
from rlops.registry.stages import LIVE, Stage, allowed_targets
from rlops.registry.store import ModelVersion, RegistryStore, Transition, now_us
from rlops.security import audit
from rlops.security.audit import AuditAction

if TYPE_CHECKING:
    from rlops.monitoring.drift.profile import ReferenceProfile

REGISTERED = "registered"


def default_actor() -> str:
    """The OS user running this process (``unknown`` when it has none, as in some containers)."""
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):
        return "unknown"


def _check_text(value: str, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must not be empty")
    if len(value) > limit:
        raise ValidationError(field, f"must be at most {limit} characters, got {len(value)}")
    return value.strip()


class Registry:
    """Registered versions in one home folder: files under ``HOME/registry``, records in ``HOME/meta.db``.

    Args:
        home: the home folder (it must exist; :meth:`Home.ensure` creates it).
        signing_key: the key that signs new versions (default: ``$RLOPS_SIGNING_KEY``, else ``HOME/keys/
            registry_ed25519``, created on the first registration). Reading and verifying never need it.
        trusted_keys: when given, base64 public keys a version must be signed by to verify (e.g. the production
            signer's only); by default the key recorded with each version at registration is trusted.
        keyring: the data keys that seal new versions' files and open stored ones (default: ``$RLOPS_DATA_KEY``,
            else ``HOME/keys/data_key``, else none: files are stored in plaintext). See ``docs/encryption.md``.
    """

    def __init__(self, home: Home, *, signing_key: SigningKey | None = None,
                 trusted_keys: Collection[str] | None = None, keyring: Keyring | None = None) -> None:
        self.home = home
        self.root = home.registry
        self.keys = home.keys
        self._signing_key = signing_key
        self._trusted = None if trusted_keys is None else frozenset(trusted_keys)
        self._data_keys = KeyWatch(home.keys, fixed=keyring)
        self.store = RegistryStore(home.metadata_url)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def signing_key(self) -> SigningKey:
        """The key new versions are signed with (loaded, or created, on first use)."""
        if self._signing_key is None:
            self._signing_key = load_signing_key(self.keys)
        return self._signing_key

    @property
    def keyring(self) -> Keyring:
        """The data keys files are sealed and opened with (empty: encryption is off)."""
        return self._data_keys.get()

    def folder(self, name: str, version: int) -> Path:
        """``HOME/registry/NAME/vN``."""
        return self.root / check_name(name) / f"v{version}"

    # ---- register -------------------------------------------------------------------------------------------

    def register(self, name: str, source: str | os.PathLike[str], *, lineage: Lineage | None = None,
                 report: str | os.PathLike[str] | None = None, actor: str | None = None,
                 reference: ReferenceProfile | None = None) -> ModelVersion:
        """Copy a policy folder into the registry as the next version of ``name``, signed, as a candidate.

        Args:
            name: the model's name (letters, digits, ``.``, ``_``, ``-``).
            source: a policy folder written by :func:`rlops.policies.save_policy`; it must load.
            lineage: training data, reward spec, scenario, parent (the rlops version and git commit are added).
            report: a validation ``report.json`` (``rlops validate`` writes one) to copy in and sign with it.
            actor: who registers it (default: the OS user).
            reference: the reference profile of its training or validation data (what drift is measured
                against), written into the version folder as ``reference_profile.json`` and signed with it; its
                columns must be the policy schema's encoded columns. Default ``None``: no profile (drift reports
                then need another reference).

        Returns:
            The new version; numbers are consecutive per name, also under concurrent registrations.

        Raises:
            ValidationError: a bad name, actor or lineage field; a reference profile whose columns are not the
                policy schema's.
            NotFoundError: ``source`` is not a policy folder, or the parent version does not exist.
            ConfigError: the policy does not load, or the report is not a JSON object.
            StorageError: the files cannot be written.
        """
        check_name(name)
        who = _check_text(actor if actor is not None else default_actor(), "actor", 200)
        lineage = (lineage or Lineage()).captured()
        if lineage.parent is not None and lineage.parent.version is not None:
            self.store.get(lineage.parent.name, lineage.parent.version)  # NotFoundError names it
        source = Path(source)
        read_manifest(source, keyring=self.keyring)  # NotFoundError / ConfigError before anything is copied
        key = self.signing_key
        models = self.root / name
        try:
            models.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=models))
        except OSError as e:
            raise StorageError(f"{models}: cannot create: {e.strerror or e}") from e
        try:
            # With a data key, plaintext exists only outside the home (a sealed source is opened there too).
            with plain_tree(source, self.keyring) as plain, sealing_into(staging, self.keyring) as work:
                self._stage_files(plain, work, report, reference)
            fsync_tree(staging)
            version = self._commit(name, staging, lineage, who, key)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        stored = self._stored_report(name, version.version)
        audit.record_change(self.home, who, AuditAction.REGISTER, str(version.ref), {
            "model": name, "version": version.version, "kind": version.kind,
            "gates_passed": None if stored is None else stored.get("status") != "fail",
            "gates_failed": _failed_gates(stored), "gates_overridden": [], "reason": ""})
        return version

    @staticmethod
    def _stage_files(source: Path, staging: Path, report: str | os.PathLike[str] | None,
                     reference: ReferenceProfile | None) -> None:
        try:
            shutil.copytree(source, staging / POLICY, symlinks=False)
        except (OSError, shutil.Error) as e:
            raise StorageError(f"{source}: cannot copy into the registry: {e}") from e
        policy = load_policy(staging / POLICY)  # what is stored must load (hashes of the copy checked too)
        if reference is not None:
            expected = tuple(policy.schema.column_names)
            if tuple(reference.columns) != expected:
                raise ValidationError("reference", f"the profile's columns {list(reference.columns)[:8]} are not "
                                                   f"the policy schema's {list(expected)[:8]}; build it with the "
                                                   "policy's schema")
            reference.save(staging / REFERENCE)
        if report is not None:
            path = Path(report)
            try:
                text = path.read_text()
            except OSError as e:
                raise NotFoundError(f"{path}: cannot read the validation report: {e.strerror or e}") from e
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}: the validation report is not JSON: {e}") from e
            if not isinstance(parsed, dict):
                raise ConfigError(f"{path}: the validation report must be a JSON object")
            (staging / REPORT).write_text(text)
        fsync_tree(staging)

    def _commit(self, name: str, staging: Path, lineage: Lineage, actor: str, key: SigningKey) -> ModelVersion:
        keyring = self.keyring  # hashes are of the plaintext, so rotating the data key keeps signatures valid
        files = _file_hashes(staging, keyring=keyring)
        chash = content_hash(staging / POLICY, keyring=keyring)
        kind = str(read_manifest(staging / POLICY, keyring=keyring).get("kind"))

        moved: list[Path] = []  # the folder of an attempt whose transaction may still fail

        def attempt(conn: Connection) -> ModelVersion:
            while moved:  # a retry: the previous attempt's rows were rolled back, so its folder goes back too
                _undo(moved.pop(), staging)
            number = self.store.next_version(conn, name)
            created = now_us()
            registration = {"name": name, "version": number, "content_hash": chash, "kind": kind, "files": files,
                            "lineage": lineage.to_dict(), "actor": actor, "created_at_us": created}
            signed = json.loads(sign_folder(staging, registration, key))
            record = ModelVersion(name, number, Stage.CANDIDATE, kind, chash, key.public_key, created, actor, signed)
            self.store.insert(conn, record, REGISTERED)
            target = self.folder(name, number)
            try:
                if target.exists():  # left by a registration that crashed between its rename and its commit
                    os.replace(target, target.with_name(f".orphan-{target.name}-{uuid.uuid4().hex[:8]}"))
                os.replace(staging, target)
            except OSError as e:
                raise StorageError(f"{target}: cannot move the version into place: {e.strerror or e}") from e
            moved.append(target)
            fsync_path(target.parent)
            return record  # the transaction commits after this returns

        try:
            return self.store.retrying(attempt)
        except BaseException:
            while moved:
                _undo(moved.pop(), staging)
            raise

    # ---- read -----------------------------------------------------------------------------------------------

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version's record (the latest of ``name`` when ``version`` is None); NotFoundError if absent."""
        return self.store.get(check_name(name), version)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of ``name``, or of every model), by name and number."""
        return self.store.list_versions(None if name is None else check_name(name))

    def names(self) -> list[str]:
        return self.store.names()

    def history(self, name: str, version: int | None = None) -> list[Transition]:
        """Every stage change of ``name`` (or of one version), oldest first, the registration included."""
        return self.store.history(check_name(name), version)

    def verify(self, name: str, version: int | None = None) -> ModelVersion:
        """Check a version's signature and every file's hash against the database; return its record.

        Raises:
            NotFoundError: no such version, or its files are gone.
            ConfigError: naming the file: unsigned, tampered, or signed by an untrusted key.
        """
        record = self.get(name, version)
        folder = self.folder(record.name, record.version)
        if self._trusted is not None and record.public_key not in self._trusted:
            raise ConfigError(f"{folder / 'registration.sig'}: {record.ref} is signed by key "
                              f"{record.registration.get('key_id')}, which is not trusted here; refusing it")
        verify_folder(folder, name=record.name, version=record.version, public_key=record.public_key,
                      content=record.content_hash, keyring=self.keyring)
        return record

    def load(self, name: str, version: int | None = None) -> BasePolicy:
        """The policy of a version, after :meth:`verify` (a tampered or unsigned artefact is refused)."""
        record = self.verify(name, version)
        return load_policy(self.folder(record.name, record.version) / POLICY, keyring=self.keyring)

    def reference(self, name: str, version: int | None = None) -> ReferenceProfile | None:
        """The reference profile registered with a version (verified first), or ``None`` if it has none.

        Args:
            name: the model.
            version: its version (default: the latest).

        Raises:
            NotFoundError: no such version.
            ConfigError: the version (its profile included) was changed after it was registered, or the profile
                is not a valid document.
        """
        from rlops.monitoring.drift.profile import ReferenceProfile

        record = self.verify(name, version)
        if REFERENCE not in record.registration.get("files", {}):
            return None
        with plain_file(self.folder(record.name, record.version) / REFERENCE, self.keyring) as path:
            return ReferenceProfile.load(path)

    def failed_gates(self, name: str, version: int) -> list[str]:
        """Names of the gates the version's validation report failed (empty without a report or failures).

        Raises:
            NotFoundError: no such version.
        """
        return _failed_gates(self._stored_report(name, version))

    def _stored_report(self, name: str, version: int) -> dict[str, Any] | None:
        """The version's validation report as stored (unverified: callers that act on it verify first)."""
        record = self.store.get(name, version)
        if not record.has_report:
            return None
        try:
            report = json.loads(read_plain(self.folder(record.name, record.version) / REPORT, self.keyring))
        except (OSError, json.JSONDecodeError) as e:
            raise StorageError(f"{record.ref}: cannot read its validation report: {e}") from e
        return report if isinstance(report, dict) else None

    def details(self, name: str, version: int | None = None) -> VersionDetails:
        """A verified version with its policy manifest and validation report."""
        record = self.verify(name, version)
        folder = self.folder(record.name, record.version)
        report = json.loads(read_plain(folder / REPORT, self.keyring)) if record.has_report else None
        return VersionDetails(record, read_manifest(folder / POLICY, keyring=self.keyring), report)

    def diff(self, a: ModelRef, b: ModelRef) -> list[Change]:
        """What changed from ``a`` to ``b`` (both verified first); see :func:`rlops.registry.diff.diff_versions`."""
        return diff_versions(self.details(a.name, a.version), self.details(b.name, b.version))

    # ---- stages ---------------------------------------------------------------------------------------------

    def transition(self, name: str, version: int, stage: Stage, *, reason: str,
                   actor: str | None = None, override_gates: bool = False) -> list[Transition]:
        """Move a version to ``stage``, recording who and why (in the registry's history and the audit log).

        Entering shadow, canary or production first verifies the artefact. Entering canary or production is
        refused when the version's validation report failed a gate, unless ``override_gates`` (which the audit log
        records as a ``gate_override`` with the reason). Promoting to production retires the name's current
        production version in the same transaction.

        Args:
            name: the model.
            version: the version to move.
            stage: where to (see :mod:`rlops.registry.stages` for the allowed moves).
            reason: why, kept in the history (required).
            actor: who (default: the OS user; a service passes the authenticated principal).
            override_gates: move into canary or production although the validation report failed gates.

        Returns:
            The transitions made: this version's, then any version it retired.

        Raises:
            ConflictError: the move is not allowed from the current stage (the message names the allowed ones), or
                the version failed validation gates and ``override_gates`` is not set.
            ValidationError: an empty reason or actor.
            NotFoundError: no such version.
            ConfigError: entering a live stage with a tampered or unsigned artefact.
        """
        stage = Stage(stage)
        why = _check_text(reason, "reason", 2000)
        who = _check_text(actor if actor is not None else default_actor(), "actor", 200)
        if stage in LIVE:
            self.verify(name, version)
        failed = _failed_gates(self._stored_report(name, version)) if stage in GATED else []
        if failed and not override_gates:
            raise ConflictError(f"stage: {name}@{version} failed validation gates ({', '.join(failed)}); moving it "
                                f"to {stage.value} needs an override with a reason (--override-gates)")

        def attempt(conn: Connection) -> list[Transition]:
            record = self.store.current(conn, check_name(name), version)
            was_production = self.store.was_in(conn, name, version, Stage.PRODUCTION)
            allowed = allowed_targets(record.stage, was_production=was_production)
            if stage not in allowed:
                names = ", ".join(s.value for s in allowed) or "none"
                raise ConflictError(f"stage: cannot move {record.ref} from {record.stage.value} to {stage.value} "
                                    f"(allowed from {record.stage.value}: {names})")
            at = now_us()
            made = [self.store.move(conn, name, version, record.stage, stage, who, why, at)]
            if stage is Stage.PRODUCTION:
                for other in self.store.in_stage(conn, name, Stage.PRODUCTION):
                    if other != version:
                        made.append(self.store.move(conn, name, other, Stage.PRODUCTION, Stage.RETIRED, who,
                                                    f"replaced by {name}@{version}: {why}", at))
            return made

        made = self.store.retrying(attempt)
        if failed:
            audit.record_change(self.home, who, AuditAction.GATE_OVERRIDE, f"{name}@{version}",
                         {"gates": failed, "stage": stage.value, "reason": why})
        for t in made:
            audit.record_change(self.home, who, AuditAction.STAGE_CHANGE, f"{t.name}@{t.version}",
                         {"from": t.from_stage.value if t.from_stage else None, "to": t.to_stage.value,
                          "reason": t.reason})
        return made


#: Stages a version may enter only with passing validation gates (or an override).
GATED = frozenset({Stage.CANARY, Stage.PRODUCTION})


def _failed_gates(report: Mapping[str, Any] | None) -> list[str]:
    """Names of the gates a stored validation report failed (none without a report)."""
    if not report:
        return []
    return [str(g.get("gate", {}).get("name", "?")) for g in report.get("gates") or []
            if isinstance(g, Mapping) and g.get("status") == "fail"]


def _undo(target: Path, staging: Path) -> None:
    """Put a version moved into place back into staging after its transaction failed."""
    if target.exists() and not staging.exists():
        try:
            os.replace(target, staging)
        except OSError as e:
            raise StorageError(f"{target}: a failed registration left this folder behind: {e.strerror or e}") from e

