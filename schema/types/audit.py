"""The audit trail, for principals with `audit:read`."""

from __future__ import annotations

import strawberry

from auth.audit import AuditRecord


@strawberry.type(description="An upstream call made for an audited operation.")
class AuditUpstreamCall:
    source: str
    operation: str
    status: str
    ms: float
    cache: str


@strawberry.type(description="One audited operation. Variables are kept only as a keyed hash.")
class AuditEvent:
    record: strawberry.Private[AuditRecord]

    @strawberry.field
    def id(self) -> str:
        return self.record.id

    @strawberry.field(description="ISO 8601 UTC.")
    def time(self) -> str:
        return self.record.time

    @strawberry.field
    def request_id(self) -> str:
        return self.record.request_id

    @strawberry.field
    def client_ip(self) -> str:
        return self.record.client_ip

    @strawberry.field
    def subject(self) -> str:
        return self.record.subject

    @strawberry.field
    def principal_kind(self) -> str:
        return self.record.principal_kind

    @strawberry.field
    def partner(self) -> str | None:
        return self.record.partner_id

    @strawberry.field
    def token_id(self) -> str | None:
        return self.record.token_id

    @strawberry.field
    def operation_type(self) -> str | None:
        return self.record.operation_type

    @strawberry.field
    def operation_name(self) -> str | None:
        return self.record.operation_name

    @strawberry.field(description="`sha256:` of the operation text, or the trusted document id.")
    def document(self) -> str | None:
        return self.record.document

    @strawberry.field(description="Schema coordinates the operation selected.")
    def fields(self) -> list[str]:
        return list(self.record.fields)

    @strawberry.field(description="Those of `fields` that are personal data.")
    def pii_fields(self) -> list[str]:
        return list(self.record.pii_fields)

    @strawberry.field
    def variables_hash(self) -> str | None:
        return self.record.variables_hash

    @strawberry.field(description="ok, partial, denied or error.")
    def outcome(self) -> str:
        return self.record.outcome

    @strawberry.field
    def codes(self) -> list[str]:
        return list(self.record.codes)

    @strawberry.field
    def http_status(self) -> int:
        return self.record.http_status

    @strawberry.field
    def duration_ms(self) -> float:
        return self.record.duration_ms

    @strawberry.field(description="The whole answer came from the answer cache: nothing was executed or called.")
    def answered_from_cache(self) -> bool:
        return self.record.answered_from_cache

    @strawberry.field
    def upstream(self) -> list[AuditUpstreamCall]:
        return [AuditUpstreamCall(source=c.source, operation=c.operation, status=c.status, ms=c.ms, cache=c.cache)
                for c in self.record.upstream]


@strawberry.input
class AuditEventFilter:
    subject: str | None = None
    partner: str | None = None
    operation: str | None = strawberry.field(default=None, description="operation name")
    outcome: str | None = None
    from_: str | None = strawberry.field(default=None, name="from", description="ISO 8601, inclusive")
    to: str | None = strawberry.field(default=None, description="ISO 8601, exclusive")
