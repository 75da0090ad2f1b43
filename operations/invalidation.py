"""Cache invalidation as a consumer of changes: what a saga changed is never served from the cache again."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from operations.changes import Change
from sources.cache import Cache


class CacheInvalidation:
    """Drops the cached answers of every source operation a change makes wrong (and, through their
    generations, every whole answer built from them: gateway.answers)."""

    def __init__(self, cache: Cache, entity_operations: Mapping[str, Mapping[str, tuple[str, ...]]],
                 on_change: Callable[[Change], None] | None = None) -> None:
        self.cache = cache
        self.entity_operations = entity_operations
        self.on_change = on_change

    async def __call__(self, changes: Sequence[Change]) -> None:
        operations: dict[tuple[str, str], None] = {}
        for change in changes:
            for operation in self.entity_operations.get(change.source, {}).get(change.entity, ()):
                operations[(change.source, operation)] = None
            if self.on_change is not None:
                self.on_change(change)
        for source, operation in operations:
            await self.cache.invalidate(source, operation)
