"""Purchase orders: created at the supplier's portal, confirmed by the supplier, received into ERP stock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from operations import records
from operations.changes import Change, ChangeKind
from operations.orders import stock_changes
from operations.saga import Done, SagaKind, Step, StepContext
from operations.systems import Systems
from sources.erp import ErpStock
from sources.errors import RuleViolation
from sources.partners import PurchaseOrder
from sources.values import PartnerKind, PurchaseOrderStatus

CREATE_PURCHASE_ORDER = "createPurchaseOrder"
RECEIVE_PURCHASE_ORDER = "receivePurchaseOrder"
CONFIRM_PURCHASE_ORDER = "confirmPurchaseOrder"
CONFIRMABLE = (PurchaseOrderStatus.SENT, PurchaseOrderStatus.CONFIRMED)
RECEIVABLE = (PurchaseOrderStatus.SENT, PurchaseOrderStatus.CONFIRMED, PurchaseOrderStatus.PARTIALLY_RECEIVED)


def create_command(supplier: str, lines: Sequence[tuple[str, int]], expected_on: date | None) -> dict[str, Any]:
    return {"supplier": supplier, "lines": [[sku, q] for sku, q in lines],
            "expectedOn": expected_on.isoformat() if expected_on else None}


def receive_command(number: str, warehouse: str, lines: Sequence[tuple[str, int]]) -> dict[str, Any]:
    return {"number": number, "warehouse": warehouse, "lines": [[sku, q] for sku, q in lines]}


def confirm_command(number: str, expected_on: date | None) -> dict[str, Any]:
    return {"number": number, "expectedOn": expected_on.isoformat() if expected_on else None}


def _lines(ctx: StepContext) -> list[tuple[str, int]]:
    return [(str(sku), int(q)) for sku, q in ctx.command["lines"]]


def _expected(ctx: StepContext) -> date | None:
    raw = ctx.command.get("expectedOn")
    return date.fromisoformat(raw) if raw else None


def po_changed(po: PurchaseOrder) -> Done:
    return Done({"purchaseOrder": records.purchase_order(po)},
                (Change(ChangeKind.PURCHASE_ORDER_CHANGED, "supplier", "purchase_order", po.number,
                        {"supplier": po.supplier, "status": po.status.value}),))


async def _purchase_order(systems: Systems, number: str, statuses: tuple[PurchaseOrderStatus, ...],
                          refusal: str) -> PurchaseOrder:
    """The purchase order, if it exists and is in one of `statuses`; else the rule `refusal` says no."""
    found = (await systems.supplier.purchase_orders([number])).get(number)
    if found is None:
        raise RuleViolation("PURCHASE_ORDER_NOT_FOUND", f"there is no purchase order {number}", "number")
    if found.status not in statuses:
        raise RuleViolation(refusal, f"purchase order {found.number} is {found.status.value}", "number")
    return found


def create_purchase_order(systems: Systems) -> SagaKind:
    async def check(ctx: StepContext) -> Done:
        supplier = str(ctx.command["supplier"])
        vendor = (await systems.erp.vendors([supplier])).get(supplier)
        if vendor is None or vendor.kind is not PartnerKind.SUPPLIER:
            raise RuleViolation("UNKNOWN_SUPPLIER", f"{supplier!r} is not a supplier", "input.supplier")
        lines = _lines(ctx)
        items = await systems.erp.items([sku for sku, _ in lines])
        for i, (sku, _) in enumerate(lines):
            if sku not in items:
                raise RuleViolation("UNKNOWN_SKU", f"there is no item {sku!r}", f"input.lines.{i}.sku")
        return Done()

    async def create(ctx: StepContext) -> Done:
        return po_changed(await systems.supplier.create_purchase_order(
            str(ctx.command["supplier"]), _lines(ctx), _expected(ctx), idempotency_key=ctx.key))

    return SagaKind(CREATE_PURCHASE_ORDER, (
        Step("check_supplier_and_items", check),
        Step("create_at_supplier", create, pivot=True),
    ))


def receive_purchase_order(systems: Systems) -> SagaKind:
    async def check(ctx: StepContext) -> Done:
        po = await _purchase_order(systems, str(ctx.command["number"]), RECEIVABLE, "PURCHASE_ORDER_NOT_RECEIVABLE")
        open_by_item = {li.item: li.quantity - li.received_quantity for li in po.lines}
        for i, (sku, quantity) in enumerate(_lines(ctx)):
            if sku not in open_by_item:
                raise RuleViolation("UNKNOWN_SKU", f"{sku!r} is not on purchase order {po.number}",
                                    f"input.lines.{i}.sku")
            if quantity > open_by_item[sku]:
                raise RuleViolation("QUANTITY_EXCEEDS_ORDER",
                                    f"{quantity} of {sku} received, but only {open_by_item[sku]} are still open",
                                    f"input.lines.{i}.quantity")
        return Done()

    def stocked(levels: Sequence[ErpStock]) -> Done:
        return Done({"stock": [records.stock(s) for s in levels]}, stock_changes(levels))

    async def add_stock(ctx: StepContext) -> Done:
        return stocked(await systems.erp_writer.receive_stock(ctx.key, warehouse=str(ctx.command["warehouse"]),
                                                              lines=_lines(ctx)))

    async def added(ctx: StepContext) -> Done | None:
        found = await systems.erp_writer.recorded(ctx.key, "receive_stock")
        return None if found is None else stocked(found)

    async def record(ctx: StepContext) -> Done:
        return po_changed(await systems.supplier.record_receipt(str(ctx.command["number"]), _lines(ctx),
                                                                idempotency_key=ctx.key))

    return SagaKind(RECEIVE_PURCHASE_ORDER, (
        Step("check_purchase_order", check),
        Step("add_erp_stock", add_stock, lookup=added, pivot=True),
        Step("record_receipt_at_supplier", record, after_pivot=True),
    ))


def confirm_purchase_order(systems: Systems) -> SagaKind:
    async def check(ctx: StepContext) -> Done:
        await _purchase_order(systems, str(ctx.command["number"]), CONFIRMABLE, "PURCHASE_ORDER_NOT_CONFIRMABLE")
        return Done()

    async def confirm(ctx: StepContext) -> Done:
        return po_changed(await systems.supplier.confirm_purchase_order(
            str(ctx.command["number"]), _expected(ctx), idempotency_key=ctx.key))

    return SagaKind(CONFIRM_PURCHASE_ORDER, (
        Step("check_purchase_order", check),
        Step("confirm_at_supplier", confirm, pivot=True),
    ))
