"""Shared GraphQL types: Money, the business enums, connections and input errors."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from decimal import Decimal
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.types import Info

from resolvers.context import Context
from resolvers.loaders import BatchFn
from sources import values
from sources.base import Slice
from sources.values import (
    CustomerStatus,
    InteractionKind,
    OrderStatus,
    PartnerKind,
    PaymentTerms,
    PurchaseOrderStatus,
    Segment,
    ShipmentStatus,
)

__all__ = ["CustomerStatus", "InteractionKind", "OrderStatus", "PartnerKind", "PaymentTerms",
           "PurchaseOrderStatus", "Segment", "ShipmentStatus"]

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)

GatewayInfo = Info[Context, None]

#: A relation not resolved ahead (by a list resolver); its field then loads it.
NOT_LOADED: Any = object()

# The business enums are the sources' own; strawberry.enum registers them in place.
strawberry.enum(OrderStatus, description="Where an order is in its life.")
strawberry.enum(Segment, description="The CRM's market segment.")
for _enum in (CustomerStatus, PaymentTerms, InteractionKind, PartnerKind, PurchaseOrderStatus, ShipmentStatus):
    strawberry.enum(_enum)


@strawberry.type(description="An exact amount of money. `amount` is a decimal string, never a float.")
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def of(cls, money: values.Money | None) -> Money | None:
        return None if money is None else cls(amount=money.amount, currency=money.currency)


async def load_nodes(info: GatewayInfo, fn: BatchFn[K, None, R], keys: Iterable[K],
                     make: Callable[[R], T]) -> list[T | None]:
    """Records by key through the request's loader, each made into its GraphQL object (None if absent)."""
    found = await info.context.loaders.load_many(fn, list(keys))
    return [None if r is None else make(r) for r in found]


async def load_node(info: GatewayInfo, fn: BatchFn[K, None, R], key: K, make: Callable[[R], T]) -> T | None:
    found = await info.context.loaders.load(fn, key)  # one future, no gather: this runs per list item
    return None if found is None else make(found)


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def page_size(info: GatewayInfo, first: int) -> int:
    """Validate `first` against the configured cap: too large is an error, never silently truncated."""
    cap = info.context.services.max_page_size
    if first < 1 or first > cap:
        raise bad_input(f"`first` must be between 1 and {cap}, got {first}")
    return first


@strawberry.type(description="An item of a list, with the cursor that resumes after it.")
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="One page of a list (Relay cursor connection).")
class Connection(Generic[T]):
    page_info: relay.PageInfo
    edges: list[Edge[T]]


def to_connection(page: Slice[R], make: Callable[[R], T]) -> Connection[T]:
    """A Relay connection from one page of source records."""
    edges = [Edge(cursor=c, node=make(r)) for r, c in zip(page.items, page.cursors, strict=True)]
    return Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next, has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None,
        ),
    )


def empty_connection() -> Connection[Any]:
    return to_connection(Slice.empty(), lambda r: r)
