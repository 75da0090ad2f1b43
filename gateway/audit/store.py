"""Reading the audit trail: filtered pages for `auditEvents` and exports, and chain verification."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.audit import GENESIS, AuditFilter, AuditPage, AuditRecord, chain_hash
from gateway.audit.sink import audit_events
from sources.cursors import CursorKind

t = audit_events
#: The trail runs newest first, keyed by (time, writer, seq).
AUDIT_CURSOR = CursorKind("auditEvents", (str, str, int))


def _where(where: AuditFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if where.subject:
        clauses.append(t.c.subject == where.subject)
    if where.partner_id:
        clauses.append(t.c.partner_id == where.partner_id)
    if where.operation_name:
        clauses.append(t.c.operation_name == where.operation_name)
    if where.outcome:
        clauses.append(t.c.outcome == where.outcome)
    if where.since:
        clauses.append(t.c.time >= where.since)
    if where.until:
        clauses.append(t.c.time < where.until)
    return clauses


class SqlAuditReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def events(self, where: AuditFilter, first: int, after: str | None) -> AuditPage:
        """Newest first; the cursor is (time, writer, seq)."""
        clauses = _where(where)
        parts = AUDIT_CURSOR.after(after)  # a bad cursor fails here, before the database
        if parts is not None:
            time_, writer, seq = str(parts[0]), str(parts[1]), int(parts[2])
            clauses.append(or_(t.c.time < time_, and_(t.c.time == time_, t.c.writer < writer),
                               and_(t.c.time == time_, t.c.writer == writer, t.c.seq < seq)))
        stmt = (select(t.c.time, t.c.writer, t.c.seq, t.c.record).where(*clauses)
                .order_by(t.c.time.desc(), t.c.writer.desc(), t.c.seq.desc()).limit(first + 1))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        page = rows[:first]
        return AuditPage(tuple(AuditRecord.from_canonical(r.record) for r in page),
                         tuple(AUDIT_CURSOR.encode(r.time, r.writer, r.seq) for r in page), len(rows) > first)

    async def stream(self, where: AuditFilter) -> AsyncIterator[AuditRecord]:
        """Every matching record, oldest first (exports)."""
        stmt = select(t.c.record).where(*_where(where)).order_by(t.c.time, t.c.writer, t.c.seq)
        async with self.engine.connect() as conn:
            result = await conn.stream(stmt)
            async for row in result:
                yield AuditRecord.from_canonical(row.record)


@dataclass(frozen=True, slots=True)
class Problem:
    writer: str
    seq: int
    kind: str  # changed | deleted | reordered | broken
    detail: str


@dataclass(frozen=True, slots=True)
class Verification:
    records: int
    writers: dict[str, tuple[int, str]]  # writer -> (last seq, head hash): anchor these outside
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(engine: AsyncEngine) -> Verification:
    """Walk every writer's chain in seq order and name each record that does not hold."""
    stmt = select(t.c.writer, t.c.seq, t.c.record, t.c.prev_hash, t.c.hash).order_by(t.c.writer, t.c.seq)
    problems: list[Problem] = []
    heads: dict[str, tuple[int, str]] = {}
    count = 0
    writer: str | None = None
    expected_seq, expected_prev = 1, GENESIS
    seen_hashes: set[str] = set()
    async with engine.connect() as conn:
        result = await conn.stream(stmt)
        async for row in result:
            count += 1
            if row.writer != writer:
                writer, expected_seq, expected_prev, seen_hashes = row.writer, 1, GENESIS, set()
            if chain_hash(row.prev_hash, row.record.encode()) != row.hash:
                problems.append(Problem(row.writer, row.seq, "changed", "the record does not match its hash"))
            if row.seq != expected_seq:
                problems.append(Problem(row.writer, row.seq, "deleted",
                                        f"records {expected_seq}..{row.seq - 1} are missing"))
            elif row.prev_hash != expected_prev:
                kind = "reordered" if row.prev_hash in seen_hashes else "broken"
                problems.append(Problem(row.writer, row.seq, kind,
                                        "does not follow the record before it in the chain"))
            seen_hashes.add(row.hash)
            expected_seq, expected_prev = row.seq + 1, row.hash
            heads[row.writer] = (row.seq, row.hash)
    return Verification(count, heads, tuple(problems))
