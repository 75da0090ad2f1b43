"""Shared GraphQL types: Money, the business enums, connections and input errors."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.types import Info

from resolvers.context import Context
from sources import values
from sources.base import Slice

T = TypeVar("T")
R = TypeVar("R")

GatewayInfo = Info[Context, None]

OrderStatus = strawberry.enum(values.OrderStatus, description="Where an order is in its life.")
CustomerStatus = strawberry.enum(values.CustomerStatus)
PaymentTerms = strawberry.enum(values.PaymentTerms)
Segment = strawberry.enum(values.Segment, description="The CRM's market segment.")
InteractionKind = strawberry.enum(values.InteractionKind)
PartnerKind = strawberry.enum(values.PartnerKind)
PurchaseOrderStatus = strawberry.enum(values.PurchaseOrderStatus)
ShipmentStatus = strawberry.enum(values.ShipmentStatus)


@strawberry.type(description="An exact amount of money. `amount` is a decimal string, never a float.")
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def of(cls, money: values.Money | None) -> Money | None:
        return None if money is None else cls(amount=money.amount, currency=money.currency)


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def page_size(info: GatewayInfo, first: int) -> int:
    """Validate `first` against the configured cap: too large is an error, never silently truncated."""
    cap = info.context.services.max_page_size
    if first < 1 or first > cap:
        raise bad_input(f"`first` must be between 1 and {cap}, got {first}")
    return first


def to_connection(page: Slice[R], make: Callable[[R], T]) -> relay.Connection[T]:
    """A Relay connection from one page of source records."""
    edges = [relay.Edge(cursor=c, node=make(r)) for r, c in zip(page.items, page.cursors, strict=True)]
    return relay.Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next, has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None,
        ),
    )


def empty_connection() -> relay.Connection[Any]:
    return to_connection(Slice.empty(), lambda r: r)
