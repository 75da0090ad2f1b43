"""The audit trail, for principals with `audit:read`."""

from __future__ import annotations

import strawberry

from auth.audit import AuditRecord


@strawberry.type(description="An upstream call made for an audited operation.")
class AuditUpstreamCall:
    source: str = strawberry.field(description="The upstream system called, by its configured name: erp, crm, "
                                               "supplier or logistics.")
    operation: str = strawberry.field(description="What the gateway asked of it, e.g. customers, orders_of_customers.")
    status: str = strawberry.field(description="ok, or the error code the call ended with, e.g. SOURCE_TIMEOUT.")
    ms: float = strawberry.field(description="How long the call took, in milliseconds.")
    cache: str = strawberry.field(description="What the gateway's source cache did: none (not cached), hit, miss, or "
                                              "stale (served past its freshness while refreshing or failing).")


@strawberry.type(description="A step of a business operation, as it stood when the operation's request ended.")
class AuditSagaStep:
    name: str = strawberry.field(description="The step, e.g. write_erp_order.")
    state: str = strawberry.field(description="Its state then: DONE, RETRYING, COMPENSATED, ... (see SagaStepState).")
    attempts: int = strawberry.field(description="How often it had been tried.")


@strawberry.type(description="A business operation an audited request ran (or found already run, for a retry).")
class AuditSaga:
    id: str = strawberry.field(description="The saga's id (`Saga.id`, `gateway sagas list`).")
    kind: str = strawberry.field(description="The operation: placeOrder, bookShipment, ...")
    state: str = strawberry.field(description="Its state when the request ended (see SagaState).")
    steps: list[AuditSagaStep] = strawberry.field(description="Each step's outcome then.")


@strawberry.type(description="One audited operation. Variables are kept only as a keyed hash.")
class AuditEvent:
    record: strawberry.Private[AuditRecord]

    @strawberry.field(description="The record's id, unique in the trail.")
    def id(self) -> str:
        return self.record.id

    @strawberry.field(description="ISO 8601 UTC.")
    def time(self) -> str:
        return self.record.time

    @strawberry.field(description="The request's id: the caller's `x-request-id` header when it sent a valid one; the "
                                  "logs and INTERNAL_ERROR answers carry it too.")
    def request_id(self) -> str:
        return self.record.request_id

    @strawberry.field(description="The caller's address as the gateway saw it (a proxy's if one is in front); - if "
                                  "unknown.")
    def client_ip(self) -> str:
        return self.record.client_ip

    @strawberry.field(description="Who called: the JWT's `sub` for staff and services, `partner:<code>:<token name>` "
                                  "for partner tokens, `anonymous` without credentials.")
    def subject(self) -> str:
        return self.record.subject

    @strawberry.field(description="user, service, partner or anonymous.")
    def principal_kind(self) -> str:
        return self.record.principal_kind

    @strawberry.field(description="The partner's vendor code for partner tokens; null otherwise.")
    def partner(self) -> str | None:
        return self.record.partner_id

    @strawberry.field(description="The id of the partner API token used (as `gateway tokens list` shows it); null for "
                                  "JWTs.")
    def token_id(self) -> str | None:
        return self.record.token_id

    @strawberry.field(description="query or mutation; null when the request was refused before its operation was "
                                  "known.")
    def operation_type(self) -> str | None:
        return self.record.operation_type

    @strawberry.field(description="The operation's name as the caller gave it; null for anonymous operations.")
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

    @strawberry.field(description="A keyed hash of the variables: equal for equal variables, never reversible; null "
                                  "without variables.")
    def variables_hash(self) -> str | None:
        return self.record.variables_hash

    @strawberry.field(description="ok, partial, denied or error.")
    def outcome(self) -> str:
        return self.record.outcome

    @strawberry.field(description="The `extensions.code` of every error in the answer, e.g. FORBIDDEN; empty when "
                                  "none.")
    def codes(self) -> list[str]:
        return list(self.record.codes)

    @strawberry.field(description="The HTTP status of the answer.")
    def http_status(self) -> int:
        return self.record.http_status

    @strawberry.field(description="From receiving the request to the answer, in milliseconds.")
    def duration_ms(self) -> float:
        return self.record.duration_ms

    @strawberry.field(description="The whole answer came from the answer cache: nothing was executed or called.")
    def answered_from_cache(self) -> bool:
        return self.record.answered_from_cache

    @strawberry.field(description="Every upstream call the operation made, in the order they ended.")
    def upstream(self) -> list[AuditUpstreamCall]:
        return [AuditUpstreamCall(source=c.source, operation=c.operation, status=c.status, ms=c.ms, cache=c.cache)
                for c in self.record.upstream]


    @strawberry.field(description="The business operations the request ran, with each step's outcome; empty for "
                                  "reads.")
    def sagas(self) -> list[AuditSaga]:
        return [AuditSaga(id=g.id, kind=g.kind, state=g.state,
                          steps=[AuditSagaStep(name=s.name, state=s.state, attempts=s.attempts) for s in g.steps])
                for g in self.record.sagas]


@strawberry.input(description="Audit trail filters; all given ones must match.")
class AuditEventFilter:
    subject: str | None = strawberry.field(default=None, description="Exactly this subject, e.g. dev@example.com.")
    partner: str | None = strawberry.field(default=None, description="Exactly this partner's vendor code, e.g. "
                                                                      "V00002.")
    operation: str | None = strawberry.field(default=None, description="operation name")
    outcome: str | None = strawberry.field(default=None, description="ok, partial, denied or error.")
    from_: str | None = strawberry.field(default=None, name="from", description="ISO 8601, inclusive")
    to: str | None = strawberry.field(default=None, description="ISO 8601, exclusive")
