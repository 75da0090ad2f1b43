"""GraphQL over HTTP: request parsing, content negotiation and status codes.

Follows the GraphQL-over-HTTP specification: POST with a JSON body, or GET for queries only; answers
`application/graphql-response+json` when the client accepts it (then requests that fail before
execution get a 4xx) and `application/json` otherwise (then well-formed requests always get 200).
An operation with `@defer` or `@stream` is answered in parts, as `multipart/mixed` or server-sent events
(gateway.incremental), to a client that accepts them.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import orjson
import strawberry
import structlog
from graphql import DocumentNode, ExperimentalIncrementalExecutionResults, GraphQLError
from graphql import OperationType as DocumentOperationType
from graphql.execution import InitialIncrementalExecutionResult
from starlette.background import BackgroundTask, BackgroundTasks
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType

from auth.authenticate import Authenticator
from auth.principal import AuthError, Principal, PrincipalKind
from auth.ratelimit import RateLimiter, bucket_key
from gateway.accept import media_ranges
from gateway.answers import Answer, AnswerCache, parsed
from gateway.apq import ApqStore
from gateway.audit.log import AuditLog, RequestFacts, document_hash, operation_of
from gateway.audit.sink import AuditUnavailable
from gateway.documents import DocumentStore, document_id, normalise_id
from gateway.errors import classify
from gateway.graphiql import graphiql_response
from gateway.idempotency import IdempotencyStore, InUse, Lease, Replay, StoredAnswer, fingerprint_of, scope_of, storable
from gateway.incremental import EVENT_STREAM, Multipart, Payloads, Stream, defers, framing, stream_of
from gateway.policy import ParsedDocuments, selected_operation
from gateway.settings import LimitSettings, Settings
from resolvers.context import Context, Services
from sources.base import ms_since, recording
from sources.tasks import failure_fields

log = structlog.get_logger("gateway.http")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_IDEMPOTENCY_KEY = 255
#: Headers of an answer that are this request's own, never replayed to a retry with the same key.
_NOT_REPLAYED = frozenset({"content-length", "x-request-id"})
#: strawberry's parser cache, the one ParsedDocuments gives execution: a text the HTTP layer looks at
#: before executing it (incremental delivery, idempotency keys) is still parsed once.
_cached_parse = ParsedDocuments().cached_parse_document


def parsed_document(query: str, max_tokens: int) -> DocumentNode:
    """The document of `query`, from (and into) the parser cache execution uses; GraphQLError if it does not parse."""
    document: DocumentNode = _cached_parse(query, max_tokens=max_tokens)
    return document


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    document_id: str | None = None
    #: The id came as Apollo's `extensions.persistedQuery`, so staff may also mean an automatic persisted query.
    apq: bool = False


class RequestError(Exception):
    """A request that cannot be executed at all: answered with a 4xx and a GraphQL-shaped body."""

    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


class PersistedQueryNotFound(RequestError):
    """An automatic persisted query this gateway does not hold: the answer Apollo clients resend the text on.

    `200` whatever the media type, as Apollo Server and Router answer: Apollo Client turns persisted
    queries off for good on a `400` instead of registering. Its message and code are what clients match.
    """

    def __init__(self) -> None:
        super().__init__(200, "PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND",
                         {"Cache-Control": "private, no-cache, must-revalidate"})


def request_id_of(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


def idempotency_key_of(request: Request) -> str | None:
    """The client's `Idempotency-Key`: a structured-field string (quoted) or a bare opaque token.

    1 to 255 printable ASCII characters once unquoted; anything else, or the header twice, is a 400,
    because a key the client cannot rely on is worse than none.
    """
    given = request.headers.getlist("idempotency-key")
    if not given:
        return None
    if len(given) > 1:
        raise RequestError(400, "send one `Idempotency-Key` header")
    raw = given[0].strip(" \t")
    key = _sf_string(raw) if raw.startswith('"') else raw
    if key is None or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not all(" " <= ch <= "~" for ch in key):
        raise RequestError(400, f"`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters, "
                                'optionally quoted: Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"')
    return key


def _sf_string(raw: str) -> str | None:
    """The value of a structured-field string (RFC 8941, 3.3.3), or None when `raw` is not exactly one."""
    chars: list[str] = []
    escaped = False
    for position, ch in enumerate(raw[1:], start=1):
        if escaped:
            if ch not in '"\\':
                return None
            chars.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            return "".join(chars) if position == len(raw) - 1 else None
        else:
            chars.append(ch)
    return None  # no closing quote


def negotiate(accept: str) -> str:
    """The response media type for an Accept header; RequestError 406 when we can offer none."""
    if not accept.strip():
        return JSON
    offered: list[tuple[tuple[float, int], str]] = []
    for media_range in media_ranges(accept):
        if media_range.media == GRAPHQL_RESPONSE:
            offered.append((media_range.rank, GRAPHQL_RESPONSE))
        elif media_range.media in (JSON, "application/*", "*/*"):
            offered.append((media_range.rank, JSON))
    if not offered:
        raise RequestError(406, f"cannot answer in any of: {accept}; use {GRAPHQL_RESPONSE} or {JSON}",
                           "NOT_ACCEPTABLE")
    return max(offered)[1]


def _parse_variables(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise RequestError(400, "`variables` is not valid JSON") from None
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RequestError(400, "`variables` must be a JSON object")
    return raw


def _graphql_request(payload: Any) -> GraphQLRequest:
    if not isinstance(payload, dict):
        raise RequestError(400, "the body must be a JSON object with a `query`")
    document, apq = _document_id(payload)
    query = payload.get("query")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise RequestError(400, "`query` must be a non-empty string")
    if query is None and document is None:
        raise RequestError(400, "send a `query` or a `documentId`")
    name = payload.get("operationName")
    if name is not None and not isinstance(name, str):
        raise RequestError(400, "`operationName` must be a string")
    return GraphQLRequest(query, _parse_variables(payload.get("variables")), name, document, apq)


def _document_id(payload: dict[str, Any]) -> tuple[str | None, bool]:
    """A document id: `documentId` (trusted documents only), or Apollo's `extensions.persistedQuery.sha256Hash`
    (a trusted document, or for staff an automatic persisted query: the flag says so)."""
    raw = payload.get("documentId")
    extensions = payload.get("extensions")
    if isinstance(extensions, str):
        try:
            extensions = orjson.loads(extensions)
        except orjson.JSONDecodeError:
            raise RequestError(400, "`extensions` is not valid JSON") from None
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestError(400, "`extensions` must be a JSON object")
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    apq = False
    if isinstance(persisted, dict):
        # Apollo's protocol has one version; a client announcing another expects something else of us.
        # An absent version is read as 1: trusted-document clients have always been served without one.
        version = persisted.get("version", 1)
        if isinstance(version, bool) or version != 1:
            raise RequestError(400, "Unsupported persisted query version")
        if raw is None:
            raw, apq = persisted.get("sha256Hash"), True
    if raw is None:
        return None, False
    if not isinstance(raw, str) or normalise_id(raw) is None:
        raise RequestError(400, "a document id is `sha256:` and 64 lower-case hex digits")
    return normalise_id(raw), apq


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body is larger than {limit} bytes", "PAYLOAD_TOO_LARGE")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the body is larger than {limit} bytes", "PAYLOAD_TOO_LARGE")
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to answer, but the attempt is still audited (as an error with this code).
        raise RequestError(400, "the client went away before sending the whole body", "CLIENT_DISCONNECTED") from None
    return b"".join(chunks)


async def read_request(request: Request, max_body_bytes: int) -> GraphQLRequest:
    """The GraphQL request of a GET or a JSON POST.

    Only `application/json` POSTs are read: browsers cannot send that cross-site without a CORS
    preflight, and credentials travel only in the Authorization header, never in cookies. Together
    with GET being limited to queries, that is the gateway's CSRF rule.
    """
    if request.method == "GET":
        if len(str(request.url)) > max_body_bytes:
            raise RequestError(414, "the URL is too long; send the operation with POST", "URI_TOO_LONG")
        return _graphql_request(dict(request.query_params))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != JSON:
        raise RequestError(415, f"POST bodies must be {JSON}, got {content_type or 'no content type'}",
                           "UNSUPPORTED_MEDIA_TYPE")
    body = await _read_body(request, max_body_bytes)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RequestError(400, "the body is not valid JSON", "BAD_REQUEST") from None
    return _graphql_request(payload)


async def _automatic_persisted_query(store: ApqStore, doc_id: str, query: str | None) -> str:
    """Apollo's APQ, for internal principals only: the text registered under `doc_id`, or register `query`.

    What is run is checked like any query sent in full: the policy runs at execution.
    """
    if query is None:
        text = await store.get(doc_id)
        if text is None:
            raise PersistedQueryNotFound
        return text
    if document_id(query) != doc_id:
        raise RequestError(400, "provided sha does not match query", "BAD_REQUEST")
    await store.put(doc_id, query)
    return query


def _error_body(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


@dataclass(slots=True)
class RequestContext(Context):
    """The resolvers' context plus what the gateway's own extensions need."""

    limits: LimitSettings = field(default_factory=LimitSettings)
    document: DocumentNode | None = None  # the parsed operation, for the audit record


@dataclass(slots=True)
class _Claimed:
    """The idempotency key this request claimed, if any: settled by `__call__` once the audit record is written."""

    lease: Lease | None = None


class GraphQLEndpoint:
    """The /graphql route."""

    def __init__(self, schema: strawberry.Schema, services: Services, settings: Settings,
                 authenticator: Authenticator, documents: DocumentStore, limiter: RateLimiter,
                 audit: AuditLog | None = None, answers: AnswerCache | None = None,
                 apq: ApqStore | None = None, idempotency: IdempotencyStore | None = None) -> None:
        self.apq = apq
        self.idempotency = idempotency
        self.limiter = limiter
        self.answers = answers
        self.audit = audit
        self.schema = schema
        self.services = services
        self.settings = settings
        self.authenticator = authenticator
        self.documents = documents

    async def _operation_text(self, gql: GraphQLRequest, principal: Principal) -> str:
        """The operation to run: a trusted document's text, for staff an automatic persisted query's,
        or the query sent (partners: only if trusted)."""
        if gql.document_id is not None:
            doc = await self.documents.get(gql.document_id)
            # The rule that keeps texts nobody reviewed away from partners (and anonymous callers).
            apq = self.apq if gql.apq and principal.internal else None
            if doc is None and apq is not None:
                return await _automatic_persisted_query(apq, gql.document_id, gql.query)
            if doc is None:
                raise RequestError(400, f"unknown document {gql.document_id}", "PERSISTED_QUERY_NOT_FOUND")
            if gql.query is not None and document_id(gql.query) != doc.id:
                raise RequestError(400, "`query` does not match `documentId`", "BAD_REQUEST")
            return doc.body
        assert gql.query is not None
        if principal.partner and await self.documents.get(document_id(gql.query)) is None:
            raise RequestError(403, "partner tokens may run only trusted documents: send a registered `documentId`",
                               "TRUSTED_DOCUMENT_REQUIRED")
        return gql.query

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        request_id = request_id_of(request)
        wants_ide = "text/html" in request.headers.get("accept", "") and self.settings.server.graphiql
        if request.method == "GET" and "query" not in request.query_params and wants_ide:
            return graphiql_response({"X-Request-Id": request_id})
        facts = RequestFacts(request_id=request_id, client_ip=request.client.host if request.client else "-")
        claimed = _Claimed()
        try:
            response = await self._handle(request, facts, claimed)
            if self.audit is not None:
                try:
                    await self.audit.write(facts, ms_since(started))
                except AuditUnavailable:
                    # Fail closed: an operation that cannot be audited is not answered as if it had been.
                    body = _error_body("the audit log is unavailable; try again later", "AUDIT_UNAVAILABLE")
                    return Response(orjson.dumps(body), status_code=503, media_type=JSON,
                                    headers={"X-Request-Id": request_id, "Retry-After": "5"})
            if claimed.lease is not None:
                # Kept once the answer is on its way: retries meanwhile wait for it, and a process that dies
                # before keeping it leaves a lease that runs out, after which a retry finds the saga's outcome.
                lease, claimed.lease = claimed.lease, None
                response.background = _then(response.background, BackgroundTask(_keep, lease, response, facts))
            return response
        finally:
            # Not kept (an answer that failed its audit, an unexpected error): the next retry runs again.
            if claimed.lease is not None:
                await claimed.lease.release()

    async def _handle(self, request: Request, facts: RequestFacts, claimed: _Claimed) -> Response:
        request_id = facts.request_id
        accept = request.headers.get("accept", "")
        stream = stream_of(accept)  # answers in parts go out this way; None: the client reads no parts
        try:
            media_type = negotiate(accept)
            whole = True
        except RequestError as exc:
            if stream is None:
                return self._respond(facts, _error_body(exc.message, exc.code), exc.status, JSON, request_id)
            # A client that reads only a stream: an answer comes as one, errors before execution keep their 4xx.
            media_type, whole = GRAPHQL_RESPONSE, False
        try:
            principal = await self.authenticator.authenticate(request.headers.get("authorization"))
            facts.principal = principal
        except AuthError as exc:
            log.info("authentication_failed", request_id=request_id, reason=exc.reason)
            return self._respond(facts, _error_body(AuthError.public_message, "UNAUTHENTICATED"), 401, media_type,
                                 request_id, {"WWW-Authenticate": 'Bearer realm="gateway"'})
        if principal.kind is PrincipalKind.ANONYMOUS and not self.settings.auth.allow_anonymous_health:
            return self._respond(facts, _error_body("authentication required", "UNAUTHENTICATED"), 401, media_type,
                                 request_id, {"WWW-Authenticate": 'Bearer realm="gateway"'})
        wait = await self.limiter.take(bucket_key(principal, request.client.host if request.client else "-"))
        if wait > 0:
            retry_after = str(max(1, math.ceil(wait)))
            body = _error_body(f"rate limit exceeded; retry in {retry_after}s", "RATE_LIMITED")
            return self._respond(facts, body, 429, media_type, request_id, {"Retry-After": retry_after})
        try:
            gql = await read_request(request, self.settings.limits.max_body_bytes)
            idempotency_key = idempotency_key_of(request)
            facts.operation_name, facts.variables = gql.operation_name, gql.variables
            facts.document = gql.document_id or (document_hash(gql.query) if gql.query else None)
            query = await self._operation_text(gql, principal)
        except RequestError as exc:
            return self._respond(facts, _error_body(exc.message, exc.code), exc.status, media_type, request_id,
                                 exc.headers)
        if stream is None and ("defer" in query or "stream" in query):
            document = self._delivered_in_parts(query, gql)
            if document is not None:
                facts.parsed = document
                return self._parts_not_acceptable(facts, media_type)
        answer_key, snapshot = None, {}
        if self.answers is not None and facts.document is not None:
            answer_key = self.answers.key(principal, facts.document, gql.operation_name, gql.variables)
            answer = await self.answers.get(answer_key)
            if answer is not None:
                return self._respond_answer(facts, query, answer, media_type, None if whole else stream)
            snapshot = await self.answers.snapshot()
        if idempotency_key is not None and request.method == "POST":
            refused = await self._claim(facts, claimed, query, gql, idempotency_key, media_type)
            if refused is not None:
                return refused
        allowed = (OperationType.QUERY,) if request.method == "GET" else (OperationType.QUERY,
                                                                          OperationType.MUTATION)
        context = RequestContext(services=self.services, request_id=request_id, principal=principal,
                                 limits=self.settings.limits, idempotency_key=idempotency_key)
        facts.calls, facts.sagas = context.calls, context.sagas
        try:
            with recording(context.calls):
                result = await self.schema.execute(query, variable_values=gql.variables,
                                                   context_value=context, operation_name=gql.operation_name,
                                                   allowed_operation_types=allowed)
        except InvalidOperationTypeError:
            body = _error_body("only queries may be sent with GET; use POST", "METHOD_NOT_ALLOWED")
            return self._respond(facts, body, 405, media_type, request_id, {"Allow": "POST"})
        except CannotGetOperationTypeError as exc:
            return self._respond(facts, _error_body(exc.as_http_error_reason(), "BAD_REQUEST"), 400, media_type,
                                 request_id)
        except MissingQueryError:
            return self._respond(facts, _error_body("`query` is missing", "BAD_REQUEST"), 400, media_type, request_id)
        finally:
            facts.parsed = context.document
        if isinstance(result, ExperimentalIncrementalExecutionResults):  # never kept by the answer cache
            if stream is None:  # not reached: the check above sees every @defer and @stream the executor does
                return self._parts_not_acceptable(facts, media_type)
            return self._respond_parts(facts, context, stream, result.initial_result, result.subsequent_results)
        status, headers = self._status(result, media_type)
        if (self.answers is not None and answer_key is not None and not result.errors
                and not isinstance(result, PreExecutionError)
                and operation_of(context.document, gql.operation_name)[0] == "query"):
            await self.answers.put(answer_key, context.calls, orjson.dumps(result.data), snapshot)
        body = self._body(result, context)
        if not whole and status == 200 and stream is not None:
            return self._respond_stream(facts, stream, body, None, {})
        return self._respond(facts, body, status, media_type, request_id, headers)

    def _delivered_in_parts(self, query: str, gql: GraphQLRequest) -> DocumentNode | None:
        """The document, if the operation to run would be delivered in parts (@defer, @stream)."""
        try:
            document = parsed_document(query, self.settings.limits.max_tokens)
        except GraphQLError:
            return None  # execution reports it
        return document if defers(document, gql.operation_name, gql.variables) else None

    async def _claim(self, facts: RequestFacts, claimed: _Claimed, query: str, gql: GraphQLRequest, key: str,
                     media_type: str) -> Response | None:
        """Claim the client's `Idempotency-Key` for a mutation, right before it executes; or the answer instead.

        Only mutations: a query changes nothing, so retrying one is harmless and its header is ignored. This
        runs after authentication, the rate limit and reading the request, so a request refused by those
        never holds a key. None: execute (holding the key, if one was claimed).
        """
        if self.idempotency is None:
            return None
        try:
            document = parsed_document(query, self.settings.limits.max_tokens)
        except GraphQLError:
            return None  # execution reports it; nothing runs
        operation = selected_operation(document, gql.operation_name)
        if operation is None or operation.operation is not DocumentOperationType.MUTATION:
            return None
        fingerprint = fingerprint_of(facts.document or document_hash(query), gql.operation_name, gql.variables)
        outcome = await self.idempotency.claim(scope_of(facts.principal, key), fingerprint)
        if isinstance(outcome, Lease):
            claimed.lease = outcome
            return None
        facts.parsed = document  # audited as the operation it names, whatever the answer
        if isinstance(outcome, Replay):
            return self._replay(facts, outcome.answer)
        if isinstance(outcome, InUse):
            retry_after = str(outcome.retry_after_s)
            body = _error_body("a request with this `Idempotency-Key` is still running; retry in "
                               f"{retry_after}s to get its answer", "IDEMPOTENCY_KEY_IN_USE")
            return self._respond(facts, body, 409, media_type, facts.request_id, {"Retry-After": retry_after})
        body = _error_body("this `Idempotency-Key` was sent with another request (operation or variables); "
                           "use a new key for a new request", "IDEMPOTENCY_KEY_REUSED")
        return self._respond(facts, body, 422, media_type, facts.request_id)

    def _replay(self, facts: RequestFacts, answer: StoredAnswer) -> Response:
        """The kept answer of the key's first request, byte for byte: nothing executed, nothing called.

        Audited like that answer (its status and error codes), as answered without executing anything.
        """
        facts.answered_from_cache = True
        facts.status = answer.status
        try:
            body = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            body = None
        facts.body = body if isinstance(body, dict) else {}
        return Response(answer.body, status_code=answer.status, media_type=answer.media_type,
                        headers={**dict(answer.headers), "X-Request-Id": facts.request_id,
                                 "Idempotent-Replayed": "true"})

    def _parts_not_acceptable(self, facts: RequestFacts, media_type: str) -> Response:
        """Apollo Router's answer to a client that cannot read the parts of a @defer or @stream answer."""
        message = (f"this operation uses @defer or @stream, whose answer comes in parts: accept "
                   f"`{Multipart.media_type}` or `{EVENT_STREAM}`")
        return self._respond(facts, _error_body(message, "NOT_ACCEPTABLE"), 406, media_type, facts.request_id)

    def _respond_answer(self, facts: RequestFacts, query: str, answer: Answer, media_type: str,
                        stream: Stream | None = None) -> Response:
        """A kept answer (gateway.answers): its data as first sent, nothing executed, nothing called."""
        facts.parsed = parsed(query)  # for the audit record's fields and operation type
        facts.answered_from_cache = True
        facts.body, facts.status = {}, 200
        body = {"data": orjson.Fragment(answer.data),
                "extensions": {"answerCache": {"ageSeconds": round(answer.age_s, 1)}}}
        if stream is not None:
            return self._respond_stream(facts, stream, body, None, {"Age": str(int(answer.age_s))})
        return Response(orjson.dumps(body), status_code=200, media_type=media_type,
                        headers={"X-Request-Id": facts.request_id, "Age": str(int(answer.age_s))})

    def _respond_parts(self, facts: RequestFacts, context: Context, stream: Stream,
                       initial: InitialIncrementalExecutionResult, rest: AsyncGenerator[Any, None]) -> Response:
        """An answer in parts: the first now, the deferred ones as they are ready.

        The audit record is written before the first byte leaves (GraphQLEndpoint.__call__), like every
        record: it holds the operation's fields (deferred ones included, all checked by the same rules
        when they resolve), the first part's outcome and the calls made until then. How the stream ended
        (the deferred parts' error codes, their calls, a client that went away) is logged with the request id.
        """
        first = self._body(initial, context)
        first["hasNext"] = True
        payloads = Payloads(initial, lambda errors: _errors(errors, context.request_id))
        rest_of = _Deliveries(context, payloads, rest, lambda: self._extensions(None, context))
        return self._respond_stream(facts, stream, first, rest_of, {})

    def _respond_stream(self, facts: RequestFacts, stream: Stream, first: dict[str, Any],
                        rest: _Deliveries | None, headers: dict[str, str]) -> Response:
        facts.body, facts.status = first, 200
        frame = framing(stream)
        if rest is None:  # an answer in one piece to a client that reads only streams
            first["hasNext"] = False

        async def body() -> AsyncIterator[bytes]:
            yield frame.start + frame.part(orjson.dumps(first))
            if rest is not None:
                async with aclosing(rest.payloads()) as payloads:
                    async for payload in payloads:
                        yield frame.part(payload)
            yield frame.end

        return StreamingResponse(body(), media_type=frame.media_type, headers={
            "X-Request-Id": facts.request_id, "Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers})

    def _status(self, result: ExecutionResult, media_type: str) -> tuple[int, dict[str, str]]:
        if isinstance(result, PreExecutionError):
            codes = {(e.extensions or {}).get("code") for e in result.errors or ()}
            if codes == {"UNAUTHENTICATED"}:
                return 401, {"WWW-Authenticate": 'Bearer realm="gateway"'}
            if media_type == GRAPHQL_RESPONSE:
                return 400, {}
        return 200, {}

    def _body(self, result: ExecutionResult | InitialIncrementalExecutionResult, context: Context) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if not isinstance(result, PreExecutionError):
            body["data"] = result.data
        if result.errors:
            # Errors raised while parsing reach us past the error extension (strawberry builds that
            # result after the operation hooks): give them their code here.
            body["errors"] = _errors(result.errors, context.request_id)
        extensions = self._extensions(result.extensions, context)
        if extensions:
            body["extensions"] = extensions
        return body

    def _extensions(self, given: dict[str, Any] | None, context: Context) -> dict[str, Any]:
        """`extensions` of an answer: what execution gave, stale sources, and the upstream calls if shown."""
        extensions: dict[str, Any] = dict(given or {})
        stale = context.calls.stale_sources()
        if stale:
            extensions["stale"] = [{"source": source, "ageSeconds": round(age, 1)}
                                   for source, age in sorted(stale.items())]
        server = self.settings.server
        if server.expose_upstream_calls and (context.principal.internal or server.expose_upstream_calls_to_partners):
            extensions["upstreamCalls"] = [
                {"source": c.source, "operation": c.operation, "status": c.status, "ms": round(c.ms, 2),
                 "startMs": round(context.calls.start_ms(c), 2), "keys": c.keys} for c in context.calls.calls]
            extensions["upstreamMs"] = round(context.calls.upstream_ms(), 2)
        return extensions

    def _respond(self, facts: RequestFacts, body: dict[str, Any], status: int, media_type: str, request_id: str,
                 headers: dict[str, str] | None = None) -> Response:
        facts.body, facts.status = body, status
        return Response(orjson.dumps(body), status_code=status, media_type=media_type,
                        headers={"X-Request-Id": request_id, **(headers or {})})


def _then(first: BackgroundTask | None, task: BackgroundTask) -> BackgroundTask:
    """`task` after whatever the response already runs once it is sent."""
    if first is None:
        return task
    tasks = BackgroundTasks()
    tasks.tasks.extend([first, task])
    return tasks


async def _keep(lease: Lease, response: Response, facts: RequestFacts) -> None:
    """Keep the answer for the key's retries, or give the key back when a retry deserves to run again.

    Answers sent in parts or as a stream are never kept: their bytes go out as they are made.
    """
    if isinstance(response, StreamingResponse) or not storable(response.status_code, facts.body):
        await lease.release()
        return
    headers = tuple((name, value) for name, value in response.headers.items() if name not in _NOT_REPLAYED)
    await lease.complete(StoredAnswer(response.status_code, response.media_type, headers, bytes(response.body)))


def _format(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    return formatted


def _errors(errors: Sequence[GraphQLError], request_id: str) -> list[dict[str, Any]]:
    return [_format(e if (e.extensions or {}).get("code") else classify(e, request_id)) for e in errors]


_END = object()


class _Deliveries:
    """The deferred parts of one answer, as JSON payloads, while the client reads them.

    graphql-core's subsequent results are drained by a task of their own, started inside the request's call
    recording (so the deferred resolvers' upstream calls count as the request's): a client that goes away
    cancels that task once, and graphql-core's own clean-up (stopping the deferred work) runs whole.
    """

    def __init__(self, context: Context, payloads: Payloads, results: AsyncGenerator[Any, None],
                 extensions: Callable[[], dict[str, Any]]) -> None:
        self.context, self.translate, self.results, self.extensions = context, payloads, results, extensions

    async def _drain(self, queue: asyncio.Queue[Any]) -> None:
        try:
            async for result in self.results:
                await queue.put(result)
        except Exception as exc:  # handed to the reader, which ends the stream with an error
            await queue.put(exc)
        await queue.put(_END)

    async def payloads(self) -> AsyncGenerator[bytes, None]:
        started, parts, codes, finished = time.perf_counter(), 0, set[str](), False
        request_id = self.context.request_id
        queue: asyncio.Queue[Any] = asyncio.Queue()
        with recording(self.context.calls):
            drain = asyncio.ensure_future(self._drain(queue))
        drain.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            while not finished:
                item = await queue.get()
                if isinstance(item, Exception):
                    log.error("unexpected_error", request_id=request_id, **failure_fields(item))
                    internal = {"code": "INTERNAL_ERROR", "requestId": request_id}
                    payload: dict[str, Any] | None = {
                        "hasNext": False, "errors": [{"message": "Internal error", "extensions": internal}]}
                else:
                    payload = {"hasNext": False} if item is _END else self.translate.subsequent(item)
                if payload is None:
                    continue
                finished = not payload["hasNext"]
                if finished:  # the last part shows the calls of the whole request
                    extensions = self.extensions()
                    if extensions:
                        payload["extensions"] = extensions
                for error in [*payload.get("errors", ()),
                              *(e for part in payload.get("incremental", ()) for e in part.get("errors", ()))]:
                    codes.add(str(error.get("extensions", {}).get("code")))
                parts += 1
                yield orjson.dumps(payload)
        finally:
            if not finished:  # the client went away: stop the deferred work (else the task ends by itself)
                drain.cancel()
            log.info("incremental_delivery_ended", request_id=request_id, parts=parts, finished=finished,
                     codes=sorted(codes), upstream_calls=len(self.context.calls.calls),
                     ms_after_first_part=round(ms_since(started), 2))
