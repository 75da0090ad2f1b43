"""Sales orders: place one (ERP allocation and order rows, then the CRM's record of it) and cancel one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from operations import records
from operations.changes import Change, ChangeKind
from operations.saga import Done, SagaKind, Step, StepContext
from operations.systems import Systems
from sources.erp import ErpOrder, ErpStock

PLACE_ORDER = "placeOrder"
CANCEL_ORDER = "cancelOrder"


def place_order_command(customer: str, lines: Sequence[tuple[str, int]], warehouse: str,
                        reference: str | None) -> dict[str, Any]:
    return {"customer": customer, "lines": [[sku, quantity] for sku, quantity in lines], "warehouse": warehouse,
            "reference": reference}


def cancel_order_command(number: int, reason: str | None) -> dict[str, Any]:
    return {"number": number, "reason": reason}


def stock_changes(levels: Iterable[ErpStock]) -> tuple[Change, ...]:
    return tuple(Change(ChangeKind.STOCK_CHANGED, "erp", "stock", f"{s.item}@{s.warehouse}",
                        {"item": s.item, "warehouse": s.warehouse, "onHand": s.on_hand, "allocated": s.allocated})
                 for s in levels)


def order_written(kind: ChangeKind, written: Any) -> Done:
    """The logged result of an ERP order write, with what it changed: the order, and the stock it moved."""
    order: ErpOrder = written.order
    result = {"order": records.order(order), "lines": [records.line(li) for li in written.lines],
              "stock": [records.stock(s) for s in written.stock]}
    change = Change(kind, "erp", "order", str(order.number),
                    {"number": order.number, "customer": order.customer, "status": order.status.value})
    return Done(result, (change, *stock_changes(written.stock)))


def _interaction(systems: Systems, subject_of: Any) -> Step:
    """Record what happened in the CRM, as an "order" interaction of the customer (after the pivot: retried
    until the CRM takes it; the idempotency key makes every retry the same request)."""

    async def record(ctx: StepContext) -> Done:
        customer = _written_order(ctx)["customer"]
        crm_id = await systems.crm_id_of(customer)
        if crm_id is None:
            return Done({"skipped": "the customer has no CRM record"})
        created = await systems.crm.add_interaction(crm_id, "order", subject_of(ctx), idempotency_key=ctx.key)
        return Done({"crmCustomer": crm_id, "interaction": _interaction_id(created)},
                    (Change(ChangeKind.INTERACTION_RECORDED, "crm", "interaction", crm_id, {"customer": customer}),))

    return Step("record_crm_interaction", record, after_pivot=True)


def _interaction_id(created: Any) -> str | None:
    found = getattr(created, "id", None)
    if found is None and isinstance(created, dict):
        found = created.get("id")
    return None if found is None else str(found)


def _written_order(ctx: StepContext) -> dict[str, Any]:
    for result in ctx.results.values():
        if isinstance(result, dict) and "order" in result:
            return dict(result["order"])
    raise LookupError("no order written before this step")


def place_order(systems: Systems) -> SagaKind:
    writer = systems.erp_writer

    async def write(ctx: StepContext) -> Done:
        cmd = ctx.command
        written = await writer.place_order(ctx.key, customer=cmd["customer"], warehouse=cmd["warehouse"],
                                           lines=[(str(sku), int(q)) for sku, q in cmd["lines"]])
        return order_written(ChangeKind.ORDER_PLACED, written)

    async def written(ctx: StepContext) -> Done | None:
        found = await writer.recorded(ctx.key, "place_order")
        return None if found is None else order_written(ChangeKind.ORDER_PLACED, found)

    def subject(ctx: StepContext) -> str:
        order = _written_order(ctx)
        lines = ", ".join(f"{q} x {sku}" for sku, q in ctx.command["lines"])
        reference = ctx.command.get("reference")
        ref = f" (customer reference {reference})" if reference else ""
        return f"Order {order['number']} placed{ref}: {lines}"

    return SagaKind(PLACE_ORDER, (
        Step("write_erp_order", write, lookup=written, pivot=True),
        _interaction(systems, subject),
    ))


def cancel_order(systems: Systems) -> SagaKind:
    writer = systems.erp_writer

    async def cancel(ctx: StepContext) -> Done:
        written = await writer.cancel_order(ctx.key, number=int(ctx.command["number"]))
        return order_written(ChangeKind.ORDER_CANCELLED, written)

    async def cancelled(ctx: StepContext) -> Done | None:
        found = await writer.recorded(ctx.key, "cancel_order")
        return None if found is None else order_written(ChangeKind.ORDER_CANCELLED, found)

    def subject(ctx: StepContext) -> str:
        reason = ctx.command.get("reason")
        return f"Order {ctx.command['number']} cancelled" + (f": {reason}" if reason else "")

    return SagaKind(CANCEL_ORDER, (
        Step("cancel_erp_order", cancel, lookup=cancelled, pivot=True),
        _interaction(systems, subject),
    ))
