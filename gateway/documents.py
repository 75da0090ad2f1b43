"""Trusted documents: operations registered ahead of time, addressed by the SHA-256 of their text.

Partner tokens may run only these (GraphQL-over-HTTP `documentId`, or Apollo's persisted-query
extension); internal users may run anything. Registration validates the operation against the schema.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from graphql import GraphQLSchema, OperationDefinitionNode, parse, validate
from graphql.error import GraphQLError
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

PREFIX = "sha256:"
_CACHE_SECONDS = 60.0

metadata = MetaData()
trusted_documents = Table(
    "trusted_documents", metadata,
    Column("id", String(71), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True, slots=True)
class TrustedDocument:
    id: str
    name: str
    body: str


def document_id(body: str) -> str:
    return PREFIX + hashlib.sha256(body.encode()).hexdigest()


def normalise_id(raw: str) -> str | None:
    """`sha256:<hex>` or a bare hex digest (Apollo's persisted queries) to our id; None if neither."""
    digest = raw[len(PREFIX):] if raw.startswith(PREFIX) else raw
    if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
        return PREFIX + digest
    return None


class InvalidDocument(ValueError):
    pass


def check_document(schema: GraphQLSchema, body: str) -> str:
    """Validate a document against the schema; returns its operation name(s) for listing."""
    try:
        document = parse(body)
    except GraphQLError as exc:
        raise InvalidDocument(f"not GraphQL: {exc.message}") from None
    errors = validate(schema, document)
    if errors:
        raise InvalidDocument("; ".join(e.message for e in errors))
    names = [d.name.value if d.name else "(anonymous)" for d in document.definitions
             if isinstance(d, OperationDefinitionNode)]
    return ", ".join(names)


class DocumentStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._cache: dict[str, tuple[float, TrustedDocument]] = {}

    async def add(self, name: str, body: str) -> TrustedDocument:
        doc = TrustedDocument(document_id(body), name, body)
        async with self.engine.begin() as conn:
            exists = (await conn.execute(select(trusted_documents.c.id).where(
                trusted_documents.c.id == doc.id))).first()
            if exists is None:
                await conn.execute(insert(trusted_documents).values(
                    id=doc.id, name=name, body=body, created_at=datetime.now(UTC)))
        return doc

    async def get(self, doc_id: str) -> TrustedDocument | None:
        cached = self._cache.get(doc_id)
        if cached is not None and time.monotonic() - cached[0] < _CACHE_SECONDS:
            return cached[1]
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(trusted_documents).where(trusted_documents.c.id == doc_id))).first()
        if row is None:
            return None
        doc = TrustedDocument(row.id, row.name, row.body)
        self._cache[doc_id] = (time.monotonic(), doc)
        return doc

    async def list(self) -> list[TrustedDocument]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(trusted_documents).order_by(trusted_documents.c.created_at))
            return [TrustedDocument(r.id, r.name, r.body) for r in rows]

    async def remove(self, doc_id: str) -> bool:
        self._cache.pop(doc_id, None)
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(trusted_documents).where(trusted_documents.c.id == doc_id))
            return bool(result.rowcount)
