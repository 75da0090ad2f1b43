"""Audit records: what one holds, its canonical form (the bytes the hash chain covers), and how it is read."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class UpstreamCallRecord:
    source: str
    operation: str
    status: str
    ms: float
    cache: str = "none"


@dataclass(frozen=True, slots=True)
class SagaStepRecord:
    name: str
    state: str
    attempts: int


@dataclass(frozen=True, slots=True)
class SagaRecord:
    """A business operation the request ran (or found already run, for a retry): its saga and each step's state."""

    id: str
    kind: str
    state: str
    steps: tuple[SagaStepRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One GraphQL operation, whatever became of it. Never holds variables, tokens or answers."""

    id: str
    time: str  # ISO 8601 UTC, microseconds
    request_id: str
    client_ip: str
    subject: str
    principal_kind: str
    token_id: str | None
    partner_id: str | None
    operation_type: str | None  # query | mutation; None when the request never got that far
    operation_name: str | None
    document: str | None  # "sha256:<hex>" of the text, or the trusted document id
    fields: tuple[str, ...] = ()  # coordinates the operation selects, e.g. "Customer.email"
    pii_fields: tuple[str, ...] = ()
    variables_hash: str | None = None  # keyed hash: comparable, not reversible
    upstream: tuple[UpstreamCallRecord, ...] = ()
    outcome: str = "ok"  # ok | partial | denied | error
    codes: tuple[str, ...] = ()
    http_status: int = 200
    duration_ms: float = 0.0
    stale_sources: tuple[str, ...] = field(default=())
    answered_from_cache: bool = False  # the whole answer came from the answer cache (no upstream calls)
    sagas: tuple[SagaRecord, ...] = ()

    def canonical(self) -> bytes:
        """JSON of every field in declaration order (orjson serialises the dataclass itself, without copies).

        The chain covers these exact bytes, which are stored as they are; verification never re-serialises.
        """
        return orjson.dumps(self)

    @classmethod
    def from_canonical(cls, raw: bytes | str) -> AuditRecord:
        data: dict[str, Any] = orjson.loads(raw)
        data["upstream"] = tuple(UpstreamCallRecord(**u) for u in data.get("upstream", ()))
        data["sagas"] = tuple(SagaRecord(g["id"], g["kind"], g["state"],
                                         tuple(SagaStepRecord(**step) for step in g.get("steps", ())))
                              for g in data.get("sagas", ()))
        for name in ("fields", "pii_fields", "codes", "stale_sources"):
            data[name] = tuple(data.get(name, ()))
        return cls(**data)


def chain_hash(previous: str, canonical: bytes) -> str:
    """h_n = SHA256(h_{n-1} || canonical(record_n))."""
    return hashlib.sha256(previous.encode() + canonical).hexdigest()


def variables_hash(key: bytes, variables: Any) -> str | None:
    if not variables:
        return None
    return "hmac-sha256:" + hmac.new(key, orjson.dumps(variables, option=orjson.OPT_SORT_KEYS),
                                     hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditFilter:
    subject: str | None = None
    partner_id: str | None = None
    operation_name: str | None = None
    outcome: str | None = None
    since: str | None = None  # ISO 8601, inclusive
    until: str | None = None  # ISO 8601, exclusive


@dataclass(frozen=True, slots=True)
class AuditPage:
    records: tuple[AuditRecord, ...]
    cursors: tuple[str, ...]
    has_next: bool


class AuditReader(Protocol):
    """Read access to the trail, newest first (for `auditEvents` and exports)."""

    async def events(self, where: AuditFilter, first: int, after: str | None) -> AuditPage: ...
