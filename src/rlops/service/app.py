"""The FastAPI app: routes translate HTTP to :class:`~rlops.engine.Engine` calls and back, and nothing more.

Error mapping (every body is ``{"error": {"field", "rule", "message"}}``): invalid input 422, unknown deployment or
decision 404, a conflict with stored state 409, a body over the limit 413, missing or wrong credentials 401, a
caller without the permission 403, a caller over its rate limit 429 (with ``Retry-After``), a body sent too slowly
408, storage or a deployment's files unusable 503. Anything else is a bug: it is logged and answered with 500
without internals.

Every route declares the permission it needs (see :mod:`rlops.service.auth`); the app refuses to start with a
route that declares none.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import os
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import pydantic
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from rlops import __version__
from rlops.engine import DeploymentSpec, Engine, OutcomeStatus
from rlops.engine.deployment import PolicySource
from rlops.errors import (
    ConfigError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    RlopsError,
    StorageError,
    UnauthorizedError,
    ValidationError,
)
from rlops.events.tables import parse_time_us
from rlops.explain.attributions import Method
from rlops.explain.decision import explain_decision
from rlops.explain.model_card import CardFormat, card_document
from rlops.home import Home
from rlops.monitoring import ServiceMetrics
from rlops.monitoring.watch import SIGNALS_FILE, SignalCollector, Watcher
from rlops.registry import Registry
from rlops.rollout.operations import Rollout
from rlops.rollout.supervisor import Hook, Supervisor
from rlops.security.audit import AuditLog
from rlops.security.keys import KeyStore
from rlops.security.permissions import Permission
from rlops.security.principal import Principal
from rlops.security.privacy import RetentionHook, erase_unit
from rlops.security.tokens import JwtVerifier
from rlops.service.auth import PUBLIC, Authenticator, PrincipalDep, TokenBucket, check_guarded, requires
from rlops.service.dashboard import install_dashboard
from rlops.service.limits import BodySizeLimit
from rlops.service.observability import RequestContext, configure_logging
from rlops.service.schemas import (
    ApplyResponse,
    ArmOut,
    AuditEntryOut,
    AuditVerifyOut,
    ChangeOut,
    CheckOut,
    DecideBatchRequest,
    DecideBatchResponse,
    DecideRequest,
    DecideResponse,
    DeploymentInfo,
    EraseRequest,
    ErasureOut,
    ErrorResponse,
    OutcomeIn,
    OutcomeResult,
    OutcomesRequest,
    OutcomesResponse,
    RolloutRequest,
)
from rlops.service.settings import ServiceSettings

log = logging.getLogger("rlops.service")
_NAMED_RULE = re.compile(r"^([a-z_][a-z0-9_.]*): (.+)$", re.S)

# A ConfigError here comes from the server's own files (a broken policy folder), never from the request: 503.
_STATUS = {ValidationError: 422, NotFoundError: 404, ConflictError: 409, ConfigError: 503, StorageError: 503,
           UnauthorizedError: 401, ForbiddenError: 403, RateLimitedError: 429}
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (401, 403, 404, 413, 422, 429)}
P = Permission


def _error(status: int, rule: str, field: str | None = None) -> JSONResponse:
    message = f"{field}: {rule}" if field else rule
    return JSONResponse(status_code=status, content={"error": {"field": field, "rule": rule, "message": message}})


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def _spec_from_request(name: str, body: dict[str, Any], home: Path) -> DeploymentSpec:
    """A deployment spec sent over HTTP: its name is the path's, and a saved policy must lie in the home folder
    (a request must not make the server read folders elsewhere on its disk)."""
    if body.get("name", name) != name:
        raise ValidationError("name", f"the body names {body['name']!r} but the path names {name!r}")
    try:
        spec = DeploymentSpec.model_validate({**body, "name": name})
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        rule = "unknown key" if first["type"] == "extra_forbidden" else str(first["msg"]).removeprefix("Value error, ")
        named = _NAMED_RULE.match(rule)
        if not where and named:  # a whole-spec check names its field in its message: "policy.kind: unknown kind"
            where, rule = named.group(1), named.group(2)
        raise ValidationError(where or "body", rule) from e
    for field, source in spec.policy_sources():
        if source.path is not None:
            _check_inside_home(source.path, home, f"{field}.path")
    return spec


def _check_inside_home(path: str, home: Path, field: str) -> None:
    rule = f"must be an absolute path inside the server's home folder {home}"
    if "\0" in path or len(path) > 4096:
        raise ValidationError(field, rule)
    folder = Path(path)
    try:
        inside = folder.is_absolute() and folder.resolve().is_relative_to(home.resolve())
    except (OSError, ValueError) as e:  # a name too long for the filesystem, a loop of links
        raise ValidationError(field, f"{rule} ({type(e).__name__})") from e
    if not inside:
        raise ValidationError(field, rule)


def _source(body: RolloutRequest, home: Path) -> PolicySource:
    if body.policy is None:
        raise ValidationError("policy", "required: {\"version\": \"MODEL@N\"}, {\"kind\": ...} or {\"path\": ...}")
    try:
        source = PolicySource.model_validate(body.policy)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        where = ".".join(["policy", *(str(p) for p in first["loc"])])
        raise ValidationError(where, str(first["msg"]).removeprefix("Value error, ")) from e
    if source.path is not None:
        _check_inside_home(source.path, home, "policy.path")
    return source


def _info(engine: Engine, name: str) -> DeploymentInfo:
    spec = engine.spec(name)
    revision = engine.store.latest(name)
    return DeploymentInfo(name=name, revision=revision.revision, policy_version=revision.policy_version,
                          policy=str(spec.policy.kind or spec.policy.path), reward_spec=spec.reward.ref,
                          action_space=spec.schema_.actions.type, actions=spec.schema_.action_names())


def _actor(principal: Principal) -> str:
    """How the audit log and the rollout history name a caller: ``key:<id>`` or ``jwt:<subject>``."""
    return principal.key_id if principal.key_id.startswith("jwt:") else f"key:{principal.key_id}"


def _decide_response(decision: Any, principal: Principal) -> DecideResponse:
    """A decision as the caller may see it: the full distribution only for roles allowed to read probabilities
    (returning it to every client would let one reconstruct the policy from a few queries)."""
    out = DecideResponse.of(decision)
    if out.probabilities is not None and not principal.allows(P.READ_PROBABILITIES, decision.deployment):
        out.probabilities = None
    return out


def create_app(settings: ServiceSettings, *, hooks: Sequence[Hook] = (), stream: int | None = None) -> FastAPI:
    """Build the app for one home folder; the engine opens at start-up and closes (flushing) at shutdown.

    Args:
        settings: how to serve.
        hooks: called with the engine after each tick of the leader process's supervisor (e.g. alert rules).
        stream: the extra word of this process's random streams (see Engine's ``stream``); default: the process
            id when ``settings.workers`` > 1, else none. Processes serving one home must not share a stream.

    Raises:
        ConfigError: a route declares no permission, or the JWT settings are unusable.
    """
    home = Home.resolve(settings.home)
    verifier = None
    if settings.jwt_issuer is not None and settings.jwt_audience is not None and settings.jwt_key is not None:
        verifier = JwtVerifier(settings.jwt_issuer, settings.jwt_audience, settings.jwt_key.get_secret_value(),
                               settings.jwt_algorithm)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Worker processes each draw from their own random stream (see Engine's ``stream``).
        own = stream if stream is not None else os.getpid() if settings.workers > 1 else None
        app.state.engine = engine = Engine(settings.home, fsync=settings.fsync, stream=own)
        app.state.authenticator = authenticator = Authenticator(KeyStore.for_home(engine.home), verifier)
        engine.on_shadow = metrics.record_shadow
        for name in engine.store.names():  # load every policy now, not on each worker's first request
            try:
                engine.spec(name)
            except RlopsError as e:  # a broken deployment is reported by /readyz and its own 503s
                log.warning("deployment %s did not load at start-up: %s", name, e)
        supervisor = None
        if settings.supervise_interval > 0:
            supervisor = Supervisor(engine, interval=settings.supervise_interval,
                                    hooks=[Watcher(interval=settings.monitor_interval,
                                                   window_s=settings.monitor_window), RetentionHook(), *hooks])
            supervisor.start()
        app.state.supervisor = supervisor
        try:
            yield
        finally:
            if supervisor is not None:
                supervisor.stop()
            authenticator.close()
            app.state.engine.close()

    app = FastAPI(title="rlops decision service", version=__version__, lifespan=lifespan,
                  description="Decide, report outcomes, and inspect deployments and decisions. Every route but "
                              "/healthz, /readyz and the dashboard's page needs `Authorization: Bearer <API key>` "
                              "(see docs/security.md).")
    metrics = ServiceMetrics(SignalCollector(home.root / SIGNALS_FILE))
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.rate_limiter = TokenBucket(settings.rate_limit, settings.rate_burst)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes, timeout=settings.body_timeout)
    app.add_middleware(RequestContext, metrics=metrics)  # added last: outermost, so every answer has an id

    @app.exception_handler(RlopsError)
    async def rlops_error(request: Request, exc: RlopsError) -> JSONResponse:
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
        if isinstance(exc, ValidationError):
            return _error(status, exc.rule, exc.field)
        response = _error(status, str(exc))
        if isinstance(exc, RateLimitedError):
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        elif isinstance(exc, UnauthorizedError):
            response.headers["WWW-Authenticate"] = 'Bearer realm="rlops"'
        return response

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return _error(422, str(first.get("msg", "invalid")), where)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; the request was not completed")

    def _check_batch(size: int, field: str) -> None:
        if size > settings.max_batch:
            raise ValidationError(field, f"{size} items is more than the limit of {settings.max_batch}")

    @app.post("/v1/deployments/{deployment}/decide", response_model=DecideResponse, responses=_ERRORS,
              response_model_exclude_none=True, dependencies=[requires(P.DECIDE)])
    def decide(deployment: str, body: DecideRequest, engine: EngineDep, principal: PrincipalDep) -> DecideResponse:
        """Choose an action; the decision is durably logged before the answer is sent. The full distribution
        (``probabilities``) is returned only to keys allowed ``read_probabilities``."""
        decision = engine.decide(deployment, body.context, body.unit_id, body.actions, key_id=principal.key_id,
                                 consent=body.consent)
        metrics.record_decisions([decision])
        return _decide_response(decision, principal)

    @app.post("/v1/deployments/{deployment}/decide-batch", response_model=DecideBatchResponse, responses=_ERRORS,
              response_model_exclude_none=True, dependencies=[requires(P.DECIDE)])
    def decide_batch(deployment: str, body: DecideBatchRequest, engine: EngineDep,
                     principal: PrincipalDep) -> DecideBatchResponse:
        """Decide for several units at once; all are validated before any is logged."""
        _check_batch(len(body.items), "items")
        actions = [item.actions for item in body.items]
        decisions = engine.decide_batch(deployment, [item.context for item in body.items],
                                        [item.unit_id for item in body.items],
                                        None if all(a is None for a in actions) else actions,
                                        key_id=principal.key_id,
                                        consent=None if all(i.consent for i in body.items)
                                        else [i.consent for i in body.items])
        metrics.record_decisions(decisions)
        return DecideBatchResponse(decisions=[_decide_response(d, principal) for d in decisions])

    @app.post("/v1/outcomes", response_model=OutcomesResponse, responses=_ERRORS,
              dependencies=[requires(P.REPORT_OUTCOME)])
    def outcomes(body: OutcomesRequest | OutcomeIn, engine: EngineDep, principal: PrincipalDep) -> OutcomesResponse:
        """Report one outcome, or several as ``{"outcomes": [...]}``; says what was accepted, duplicated or
        dead-lettered, and why. A key may report only for decisions of deployments in its scope (and, scoped
        ``own-outcomes``, only for decisions it made); one such outcome refuses the whole request (403) before
        anything is stored."""
        items = body.outcomes if isinstance(body, OutcomesRequest) else [body]
        _check_batch(len(items), "outcomes")
        results = engine.report_batch([item.model_dump() for item in items], key_id=principal.key_id,
                                      authorize=principal.require_outcome)
        metrics.record_outcomes(results)
        counts = Counter(r.status for r in results)
        return OutcomesResponse(accepted=counts[OutcomeStatus.ACCEPTED], duplicates=counts[OutcomeStatus.DUPLICATE],
                                dead_lettered=counts[OutcomeStatus.DEAD_LETTER],
                                quarantined=counts[OutcomeStatus.QUARANTINED],
                                results=[OutcomeResult.of(r) for r in results])

    @app.get("/v1/decisions/{decision_id}", responses=_ERRORS, dependencies=[requires(P.READ_DECISIONS)])
    def decision(decision_id: str, engine: EngineDep, principal: PrincipalDep) -> dict[str, Any]:
        """The logged decision record (``probabilities`` only for keys allowed ``read_probabilities``)."""
        record = engine.decision(decision_id)
        if not principal.scope.covers(record["deployment"]):
            raise NotFoundError(f"decision {decision_id!r} does not exist")  # what a scoped key may not see
        if not principal.allows(P.READ_PROBABILITIES, record["deployment"]):
            record["probabilities"] = None
        return record

    @app.get("/v1/decisions/{decision_id}/explanation", responses=_ERRORS,
             dependencies=[requires(P.READ_PROBABILITIES)])
    def explanation(decision_id: str, engine: EngineDep, principal: PrincipalDep,
                    method: Annotated[Method, Query(description="auto (exact > integrated gradients > Shapley "
                                                                "sampling), or one of them.")] = Method.AUTO,
                    budget: Annotated[int, Query(ge=16, le=65_536, description="Shapley sampling's budget of "
                                                 "score evaluations.")] = 2048,
                    seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> dict[str, Any]:
        """Why the policy version that made the decision chose its action: attributions of the chosen action's
        score to each context feature, and of its advantage over the runner-up, against a baseline (the version's
        reference profile mean, else the mean logged context). Reveals the policy's scores: permission
        ``read_probabilities``."""
        deployment = engine.decision_deployment(decision_id)
        if deployment is None or not principal.scope.covers(deployment):
            raise NotFoundError(f"decision {decision_id!r} does not exist")
        principal.require(P.READ_PROBABILITIES, deployment)
        return explain_decision(engine, decision_id, method=method, budget=budget, seed=seed).to_dict()

    @app.get("/v1/deployments", response_model=list[DeploymentInfo], responses=_ERRORS,
             dependencies=[requires(P.READ_DEPLOYMENTS)])
    def deployments(engine: EngineDep, principal: PrincipalDep) -> list[DeploymentInfo]:
        """The deployments the key may see."""
        return [_info(engine, name) for name in engine.store.names() if principal.scope.covers(name)]

    @app.get("/v1/deployments/{deployment}", response_model=DeploymentInfo, responses=_ERRORS,
             dependencies=[requires(P.READ_DEPLOYMENTS)])
    def deployment(deployment: str, engine: EngineDep) -> DeploymentInfo:
        return _info(engine, deployment)

    admin_errors: dict[int | str, dict[str, Any]] = {**_ERRORS, 409: {"model": ErrorResponse}}

    @app.put("/v1/admin/deployments/{deployment}", response_model=ApplyResponse, responses=admin_errors,
             dependencies=[requires(P.DEPLOY)])
    def admin_apply(deployment: str, body: dict[str, Any], engine: EngineDep, principal: PrincipalDep,
                    override_gates: bool = False) -> ApplyResponse:
        """Create or update a deployment (a hot swap: running servers serve the new revision within a second).

        The body is a deployment spec as in a deployment file, with ``schema`` and ``reward`` inline and the
        policy by ``kind`` and ``params`` or by ``path`` to a saved policy inside the server's home folder.
        Idempotent: the same spec again makes no new revision. Needs permission ``deploy``; a registered version
        that failed validation gates as ``policy`` or ``canary.policy`` also needs ``?override_gates=true`` and
        permission ``override_gate``.
        """
        spec = _spec_from_request(deployment, body, settings.home)
        if override_gates:
            principal.require(P.OVERRIDE_GATE, deployment)
        Rollout(engine, actor=_actor(principal), override_gates=override_gates).gate_spec(spec)
        try:
            result = engine.apply(spec, actor=_actor(principal))
        except (ConfigError, NotFoundError) as e:  # from the request's spec: the client's error, not the server's
            raise ValidationError("policy.path" if spec.policy.path is not None else "policy.params", str(e)) from e
        return ApplyResponse(name=result.name, revision=result.revision, created=result.created,
                             policy_version=result.policy_version)

    install_dashboard(app, read=requires(P.READ_METRICS), public=PUBLIC, behaviour=requires(P.READ_PROBABILITIES))

    @app.post("/v1/admin/deployments/{deployment}/check", response_model=CheckOut, responses=admin_errors,
              dependencies=[requires(P.ROLLOUT)])
    def admin_check(deployment: str, engine: EngineDep, principal: PrincipalDep) -> CheckOut:
        """Judge the canary with the sequential guardrail now, and promote or roll back as it allows."""
        check = Rollout(engine, actor=_actor(principal)).check(deployment)
        return CheckOut(deployment=check.deployment, canary_version=check.canary_version,
                        production_version=check.production_version, action=check.action,
                        verdict=None if check.result is None else check.result.to_dict())

    @app.post("/v1/admin/deployments/{deployment}/{action}", response_model=ChangeOut, responses=admin_errors,
              dependencies=[requires(P.ROLLOUT)])
    def admin_rollout(deployment: str, action: str, body: RolloutRequest, engine: EngineDep,
                      principal: PrincipalDep) -> ChangeOut:
        """Change what a deployment serves: ``shadow``, ``canary``, ``holdout``, ``promote`` or ``rollback``.

        Running servers serve the new revision within a second, without failed requests. Every change is kept
        in the deployment's history with its reason and in the audit log. Needs permission ``rollout``.
        """
        if body.override_gates:
            principal.require(P.OVERRIDE_GATE, deployment)
        rollout = Rollout(engine, actor=_actor(principal), override_gates=body.override_gates)
        engine.store.latest(deployment)  # 404 before anything else
        if action == "promote":
            change = rollout.promote(deployment, reason=body.reason)
        elif action == "rollback":
            change = rollout.rollback(deployment, reason=body.reason)
        elif action == "shadow":
            name = body.name or "shadow"
            change = (rollout.unshadow(deployment, shadow=name, reason=body.reason) if body.remove
                      else rollout.shadow(deployment, _source(body, settings.home), shadow=name, reason=body.reason))
        elif action == "canary":
            if body.fraction is None:
                raise ValidationError("fraction", "required for a canary: its share of units, 0 < fraction < 1")
            change = rollout.canary(deployment, _source(body, settings.home), body.fraction, reason=body.reason)
        elif action == "holdout":
            fraction = 0.05 if body.fraction is None else body.fraction
            change = rollout.holdout(deployment, None if body.remove else _source(body, settings.home), fraction,
                                     reason=body.reason)
        else:
            raise NotFoundError(f"action: unknown rollout action {action!r} (shadow, canary, holdout, promote, "
                                "rollback)")
        return ChangeOut(**dataclasses.asdict(change))

    @app.get("/v1/deployments/{deployment}/arms", response_model=list[ArmOut], responses=_ERRORS,
             dependencies=[requires(P.READ_DEPLOYMENTS)])
    def arms(deployment: str, engine: EngineDep) -> list[ArmOut]:
        """The arms serving the deployment now: production, canary, holdout, shadows."""
        return [ArmOut(role=a.role.value, name=a.name, policy_version=a.policy_version, fraction=a.fraction,
                       source=a.source, learned=engine.learned_count(deployment, a.name))
                for a in engine.arms(deployment)]

    @app.get("/v1/deployments/{deployment}/history", response_model=list[ChangeOut], responses=_ERRORS,
             dependencies=[requires(P.READ_DEPLOYMENTS)])
    def history(deployment: str, engine: EngineDep, limit: int = 100) -> list[ChangeOut]:
        """Rollout changes, oldest first: what, which version, who, why."""
        if not 1 <= limit <= 10_000:
            raise ValidationError("limit", "must be between 1 and 10000")
        return [ChangeOut(**dataclasses.asdict(c)) for c in Rollout(engine).history(deployment, limit)]

    @app.post("/v1/admin/erase", response_model=ErasureOut, responses=admin_errors,
              dependencies=[requires(P.ERASE)])
    def admin_erase(body: EraseRequest, engine: EngineDep, principal: PrincipalDep) -> ErasureOut:
        """Erase a unit: remove its decisions and their outcomes from the event log and its Parquet files, search
        every other file under the home for its id, and record the erasure (with a keyed hash of the id, never the
        id) in the audit log. 409 naming what remains when it could not finish (e.g. another server process did
        not hand over its segment in time); the unit id travels in the body so that no access log records it."""
        result = erase_unit(engine, body.unit_id, _actor(principal), wait_s=30)
        if not result.complete:
            raise ConflictError("erasure incomplete: " + "; ".join(result.problems()))
        return ErasureOut(unit_ref=result.unit_ref, **result.details())

    @app.get("/v1/models/{name}/{version}/card", response_class=Response, responses=_ERRORS,
             dependencies=[requires(P.READ_MODELS)])
    def model_card(name: str, version: str, engine: EngineDep,
                   fmt: Annotated[CardFormat, Query(alias="format")] = CardFormat.JSON) -> Response:
        """The model card of a registered version, verified first: JSON, or Markdown with YAML front matter in the
        Hugging Face hub's style (``?format=md``)."""
        with Registry(engine.home) as registry:
            text, media_type = card_document(registry, name, version, fmt)
        return Response(content=text, media_type=media_type)

    @app.get("/v1/audit/entries", response_model=list[AuditEntryOut], responses=_ERRORS,
             dependencies=[requires(P.READ_AUDIT)])
    def audit_entries(engine: EngineDep, start: str | None = None, end: str | None = None,
                      limit: int = 1000) -> list[AuditEntryOut]:
        """Audit entries with ``start <= ts < end`` (ISO 8601 or microseconds since the epoch; default: all),
        oldest first, at most ``limit``."""
        if not 1 <= limit <= 100_000:
            raise ValidationError("limit", "must be between 1 and 100000")
        start_us = None if start is None else parse_time_us(start, "start")
        end_us = None if end is None else parse_time_us(end, "end")
        with AuditLog.for_home(engine.home) as audit_log:
            entries = itertools.islice(audit_log.entries(start_us=start_us, end_us=end_us), limit)
            return [AuditEntryOut(**e.to_dict()) for e in entries]

    @app.get("/v1/audit/verify", response_model=AuditVerifyOut, responses=_ERRORS,
             dependencies=[requires(P.READ_AUDIT)])
    def audit_verify(engine: EngineDep) -> AuditVerifyOut:
        """Recompute the audit chain: whether it checks out, and the first entry altered, removed or reordered."""
        with AuditLog.for_home(engine.home) as audit_log:
            result = audit_log.verify()
            return AuditVerifyOut(ok=result.ok, entries=result.entries, first_bad_seq=result.first_bad_seq,
                                  problem=result.problem, anchor=audit_log.anchor())

    @app.get("/metrics", response_class=Response, responses=_ERRORS, dependencies=[requires(P.READ_METRICS)])
    def prometheus(principal: PrincipalDep) -> Response:
        """Prometheus text exposition: decisions, outcomes, policy and request latency (scrape with a
        ``viewer`` key as the bearer token; a key restricted to some deployments may not: it covers them all)."""
        if principal.scope.deployments is not None:
            raise ForbiddenError(f"key {principal.key_id} may not read /metrics: the key is restricted to some "
                                 "deployments and the metrics cover every deployment (use an unrestricted viewer key)")
        return Response(content=metrics.exposition(), media_type=metrics.content_type)

    @app.get("/healthz", dependencies=[PUBLIC])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", dependencies=[PUBLIC])
    def readyz(engine: EngineDep) -> JSONResponse:
        """Every deployment's policy loads and the event log is open for writing (says how many deployments,
        not which: anyone may ask)."""
        try:
            for name in engine.store.names():
                engine.spec(name)
        except RlopsError:
            return JSONResponse(status_code=503, content={"status": "not ready",
                                                          "reason": "a deployment does not load (see the log)"})
        if engine.log.closed:
            return JSONResponse(status_code=503, content={"status": "not ready", "reason": "event log closed"})
        return JSONResponse(content={"status": "ready", "deployments": len(engine.store.names())})

    check_guarded(app)
    return app


def app_from_env() -> FastAPI:
    """The app of one worker process of ``rlops serve --workers N``: settings from the ``RLOPS_*`` variables the
    parent set (:meth:`ServiceSettings.to_env`)."""
    settings = ServiceSettings.from_env(os.environ.get("RLOPS_HOME"))
    configure_logging()
    return create_app(settings)
