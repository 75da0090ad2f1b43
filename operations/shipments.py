"""Shipping an order: book it with the carrier, then mark it shipped in the ERP (undoing the booking if the
ERP cannot take it)."""

from __future__ import annotations

from typing import Any

from operations import records
from operations.changes import Change, ChangeKind
from operations.orders import order_written
from operations.saga import Done, SagaKind, Step, StepContext
from operations.systems import Systems
from sources.errors import RuleViolation
from sources.values import OrderStatus, PartnerKind

BOOK_SHIPMENT = "bookShipment"
SHIPPABLE = (OrderStatus.OPEN, OrderStatus.ALLOCATED)


def book_shipment_command(order: int, carrier: str) -> dict[str, Any]:
    return {"order": order, "carrier": carrier}


def book_shipment(systems: Systems) -> SagaKind:
    async def check(ctx: StepContext) -> Done:
        number, carrier = int(ctx.command["order"]), str(ctx.command["carrier"])
        found = (await systems.erp.orders([number])).get(number)
        if found is None:
            raise RuleViolation("ORDER_NOT_FOUND", f"there is no order {number}", "order")
        if found.status not in SHIPPABLE:
            raise RuleViolation("ORDER_NOT_SHIPPABLE",
                                f"order {number} is {found.status.value}; only open or allocated orders ship", "order")
        vendor = (await systems.erp.vendors([carrier])).get(carrier)
        if vendor is None or vendor.kind is not PartnerKind.CARRIER:
            raise RuleViolation("UNKNOWN_CARRIER", f"{carrier!r} is not a carrier", "carrier")
        return Done({"status": found.status.value})

    async def book(ctx: StepContext) -> Done:
        booked = await systems.logistics.book_shipment(int(ctx.command["order"]), str(ctx.command["carrier"]),
                                                       idempotency_key=ctx.key)
        return Done({"shipment": records.shipment(booked)},
                    (Change(ChangeKind.SHIPMENT_BOOKED, "logistics", "shipment", booked.tracking_number,
                            {"order": booked.order, "carrier": booked.carrier}),))

    async def cancel(ctx: StepContext, result: Any) -> Done:
        tracking = str(result["shipment"]["trackingNumber"])
        cancelled = await systems.logistics.cancel_shipment(tracking, idempotency_key=f"{ctx.key}:cancel")
        return Done({"cancelled": True, "cancelledNow": cancelled},
                    (Change(ChangeKind.SHIPMENT_CANCELLED, "logistics", "shipment", tracking,
                            {"order": int(ctx.command["order"])}),))

    async def ship(ctx: StepContext) -> Done:
        return order_written(ChangeKind.ORDER_SHIPPED,
                             await systems.erp_writer.mark_shipped(ctx.key, number=int(ctx.command["order"])))

    async def shipped(ctx: StepContext) -> Done | None:
        found = await systems.erp_writer.recorded(ctx.key, "mark_shipped")
        return None if found is None else order_written(ChangeKind.ORDER_SHIPPED, found)

    return SagaKind(BOOK_SHIPMENT, (
        Step("check_order", check),
        Step("book_with_carrier", book, compensation=cancel),
        Step("mark_erp_order_shipped", ship, lookup=shipped, pivot=True),
    ))
