"""Building audit records from what a request did, and writing them."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graphql import DocumentNode, FieldNode, GraphQLSchema, OperationDefinitionNode, TypeInfo, TypeInfoVisitor, visit
from graphql.language import Visitor

from auth.audit import AuditRecord, SagaRecord, SagaStepRecord, UpstreamCallRecord, variables_hash
from auth.principal import ANONYMOUS, Principal
from gateway.audit.sink import SqlAuditSink
from operations.saga import Outcome
from sources.base import CallLog

DENIED_CODES = frozenset({"FORBIDDEN", "UNAUTHENTICATED", "TRUSTED_DOCUMENT_REQUIRED", "RATE_LIMITED",
                          "INTROSPECTION_DISABLED"})


@dataclass
class RequestFacts:
    """What the HTTP layer learns about a request as it goes; turned into one AuditRecord at the end."""

    request_id: str
    client_ip: str
    principal: Principal = ANONYMOUS
    document: str | None = None  # sha256:<hex> of the text, or the trusted document id
    operation_name: str | None = None
    variables: Any = None
    parsed: DocumentNode | None = None
    calls: CallLog = field(default_factory=CallLog)
    body: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    answered_from_cache: bool = False  # a kept answer (gateway.answers): nothing executed, nothing called
    #: Business operations the request ran: the same list as its context's (shared, filled while executing).
    sagas: list[Outcome] = field(default_factory=list)


class _Fields(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.seen: dict[str, None] = {}

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent = self.type_info.get_parent_type()
        if parent is not None and not node.name.value.startswith("__"):
            self.seen.setdefault(f"{parent.name}.{node.name.value}", None)


def touched_fields(schema: GraphQLSchema, document: DocumentNode) -> tuple[str, ...]:
    """Every schema coordinate the document selects (fragments included), in document order."""
    type_info = TypeInfo(schema)
    collector = _Fields(type_info)
    visit(document, TypeInfoVisitor(type_info, collector))
    return tuple(collector.seen)


def operation_of(document: DocumentNode | None, name: str | None) -> tuple[str | None, str | None]:
    """The (type, name) of the operation that ran: the one named, or the document's only one."""
    if document is None:
        return None, name
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = next((o for o in operations if name is None or (o.name and o.name.value == name)), None)
    if chosen is None:
        return None, name
    return chosen.operation.value, chosen.name.value if chosen.name else name


def document_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def outcome_of(body: dict[str, Any], status: int) -> tuple[str, tuple[str, ...]]:
    codes = tuple(sorted({str((e.get("extensions") or {}).get("code", "UNKNOWN")) for e in body.get("errors", ())}))
    if status in (401, 403, 429) or (codes and set(codes) <= DENIED_CODES):
        return "denied", codes
    if status >= 400 or (codes and body.get("data") is None):
        return "error", codes
    return ("partial" if codes else "ok"), codes


class AuditLog:
    def __init__(self, sink: SqlAuditSink, schema: GraphQLSchema, pii_fields: Iterable[str],
                 variables_key: bytes) -> None:
        self.sink = sink
        self.schema = schema
        self.pii = frozenset(pii_fields)
        self.variables_key = variables_key
        self._field_cache: dict[str, tuple[str, ...]] = {}

    def _fields(self, facts: RequestFacts) -> tuple[str, ...]:
        """Coordinates of the document; remembered per document, since clients send the same ones again."""
        if facts.parsed is None:
            return ()
        key = facts.document or ""
        fields = self._field_cache.get(key) if key else None
        if fields is None:
            fields = touched_fields(self.schema, facts.parsed)
            if key:
                if len(self._field_cache) >= 10_000:
                    self._field_cache.clear()
                self._field_cache[key] = fields
        return fields

    def record(self, facts: RequestFacts, duration_ms: float) -> AuditRecord:
        fields = self._fields(facts)
        outcome, codes = outcome_of(facts.body, facts.status)
        p = facts.principal
        stale = facts.calls.stale_sources()
        operation_type, operation_name = operation_of(facts.parsed, facts.operation_name)
        return AuditRecord(
            id=uuid.uuid4().hex, time=datetime.now(UTC).isoformat(timespec="microseconds"),
            request_id=facts.request_id, client_ip=facts.client_ip, subject=p.subject, principal_kind=p.kind.value,
            token_id=p.token_id, partner_id=p.partner_id,
            operation_type=operation_type, operation_name=operation_name,
            document=facts.document, fields=fields, pii_fields=tuple(f for f in fields if f in self.pii),
            variables_hash=variables_hash(self.variables_key, facts.variables),
            upstream=tuple(UpstreamCallRecord(c.source, c.operation, c.status, round(c.ms, 2), c.cache)
                           for c in facts.calls.calls),
            outcome=outcome, codes=codes, http_status=facts.status, duration_ms=round(duration_ms, 2),
            stale_sources=tuple(sorted(stale)), answered_from_cache=facts.answered_from_cache,
            sagas=tuple(SagaRecord(o.id, o.kind, o.state.value,
                                   tuple(SagaStepRecord(s.name, s.state, s.attempts) for s in o.steps))
                        for o in facts.sagas))

    async def write(self, facts: RequestFacts, duration_ms: float) -> None:
        await self.sink.write(self.record(facts, duration_ms))
