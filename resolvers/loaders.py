"""Per-request DataLoaders: every relation is read in batches, each distinct key once.

A loader is made per (batch function, arguments) pair the first time a resolver asks for it, so
`orders(first: 10)` under fifty customers becomes one call with fifty keys, and the same product under
many order lines is fetched once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar, cast

from strawberry.dataloader import DataLoader

K = TypeVar("K", bound=Hashable)
A = TypeVar("A", bound=Hashable)
V = TypeVar("V")

BatchFn = Callable[[Sequence[K], A], Awaitable[Mapping[K, V]]]


class Loaders:
    def __init__(self) -> None:
        self._loaders: dict[tuple[Any, Hashable], DataLoader[Any, Any]] = {}

    def get(self, fn: BatchFn[K, A, V], args: A) -> DataLoader[K, V | None]:
        key = (fn, args)
        loader = self._loaders.get(key)
        if loader is None:
            async def load(keys: list[K]) -> list[V | None]:
                found = await fn(keys, args)
                return [found.get(k) for k in keys]

            loader = DataLoader(load_fn=load)
            self._loaders[key] = loader
        return cast("DataLoader[K, V | None]", loader)  # a string: the subscripted type costs per call

    async def load(self, fn: BatchFn[K, A, V], key: K, args: A = None) -> V | None:  # type: ignore[assignment]
        return await self.get(fn, args).load(key)

    async def load_many(self, fn: BatchFn[K, A, V], keys: Sequence[K],
                        args: A = None) -> list[V | None]:  # type: ignore[assignment]
        return list(await self.get(fn, args).load_many(list(keys)))
