"""The change event: what changed, in which system, when."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


class MalformedEvent(ValueError):
    """Bytes on the bus that are not a change event this gateway wrote."""


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One changed entity of one system (`erp`/`stock`/`ITEM-1@WH1`), as its producer saw it.

    `id` is unique per change: a bus drops a second publish of the same id (a producer's retry after a
    crash). `version` is the source's version of the entity after the change, when the source has one.
    """

    id: str
    source: str  # erp | crm | supplier | logistics
    entity: str  # as the source's ENTITY_OPERATIONS spell it: order, stock, purchase_order, ...
    key: str
    kind: str  # OrderPlaced, StockChanged, ...
    time: str  # ISO 8601 UTC
    version: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def decode(cls, raw: bytes) -> ChangeEvent:
        try:
            found = orjson.loads(raw)
            return cls(id=str(found["id"]), source=str(found["source"]), entity=str(found["entity"]),
                       key=str(found["key"]), kind=str(found["kind"]), time=str(found["time"]),
                       version=None if found.get("version") is None else int(found["version"]),
                       data=dict(found.get("data") or {}))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedEvent(f"not a change event: {exc}") from None

    def subject(self, prefix: str) -> str:
        """Where the event travels on a bus with subjects: `<prefix>.<source>.<entity>`."""
        return f"{prefix}.{self.source}.{self.entity}"
