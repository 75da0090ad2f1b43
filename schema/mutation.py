"""Writes. Each one changes one system and forgets what the cache held about what it changed."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError

from operations import orders, purchase_orders, records, shipments
from operations.saga import Outcome
from resolvers import customer as customers
from resolvers import operations as ops
from resolvers.permissions import forbidden, visible_purchase_orders
from schema.types.common import GatewayInfo, bad_input, key_argument, typed_id_argument
from schema.types.customer import Customer
from schema.types.operations import (
    BookShipmentPayload,
    CancelOrderPayload,
    CreatePurchaseOrderInput,
    PlaceOrderInput,
    PlaceOrderPayload,
    PurchaseOrderLineInput,
    PurchaseOrderPayload,
    ReceivePurchaseOrderInput,
    UserError,
    UserErrorCode,
    saga_for,
)
from schema.types.order import Order, Shipment
from schema.types.partner import PurchaseOrder
from schema.types.product import StockLevel, Warehouse
from sources import keys
from sources.errors import MappingError
from sources.mapping import email as clean_email
from sources.mapping import phone as clean_phone

#: Longest contact data read: RFC 5321's limit for an address, and more than any phone number needs. Longer
#: text is refused before it is parsed, sent on or quoted back in an error.
MAX_EMAIL_CHARS = 254
MAX_PHONE_CHARS = 40
#: Lines of one order or purchase order, and the largest quantity of one line.
MAX_LINES = 100
MAX_QUANTITY = 1_000_000
MAX_REFERENCE_CHARS = 40
MAX_REASON_CHARS = 200


def _check_text(value: str | None, name: str, limit: int) -> None:
    if isinstance(value, str) and (len(value) > limit or not value.isprintable()):
        raise bad_input(f"`{name}` must be at most {limit} printable characters")


@strawberry.input(description="New contact data; a field left out is not changed, `null` clears the phone.")
class UpdateCustomerContactInput:
    customer: strawberry.ID = strawberry.field(description="The customer's global id (`Customer.id`); it must have a "
                                                           "CRM record.")
    email: str | None = strawberry.field(default=strawberry.UNSET, description="The new e-mail address (at most 254 "
                                         "characters; stored lower-cased). It cannot be cleared.")
    phone: str | None = strawberry.field(default=strawberry.UNSET, description="The new phone number, in any common "
                                         "format (stored in E.164 form); `null` clears it.")


@strawberry.type(description="The result of `updateCustomerContact`.")
class UpdateCustomerContactPayload:
    customer: Customer | None = strawberry.field(description="The customer as the CRM now has it.")


def _lines(lines: list[PurchaseOrderLineInput] | list[Any], name: str) -> list[tuple[str, int]]:
    """Order lines checked at the edge: SKUs well-formed and each once, quantities in range."""
    if not 1 <= len(lines) <= MAX_LINES:
        raise bad_input(f"`{name}` must have 1 to {MAX_LINES} lines")
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for i, line in enumerate(lines):
        sku = key_argument(line.sku, keys.SKU, f"{name}.{i}.sku")
        if not 1 <= line.quantity <= MAX_QUANTITY:
            raise bad_input(f"`{name}.{i}.quantity` must be 1 to {MAX_QUANTITY}")
        if sku in seen:
            raise bad_input(f"`{name}.{i}.sku`: {sku} is on another line already; give each SKU once")
        seen.add(sku)
        out.append((sku, line.quantity))
    return out


def _user_errors(outcome: Outcome) -> list[UserError]:
    known = {c.value for c in UserErrorCode}
    return [UserError(code=UserErrorCode(e.code) if e.code in known else UserErrorCode.RULE_VIOLATED,
                      field=e.field, message=e.message) for e in ops.user_errors(outcome)]


def _order(outcome: Outcome, step: str) -> Order | None:
    found = ops.result(outcome, step)
    return None if found is None else Order.of(records.to_order(found["order"]))


def _purchase_order(outcome: Outcome, step: str) -> PurchaseOrder | None:
    found = ops.result(outcome, step)
    return None if found is None else PurchaseOrder.of(records.to_purchase_order(found["purchaseOrder"]))


@strawberry.type(description="Writes. A business operation (placing an order, booking a shipment, ...) writes to "
                              "several systems as one saga: send an `Idempotency-Key` header and a retry of the "
                              "same request returns the first answer instead of writing again.")
class Mutation:
    @strawberry.mutation(description="Change a customer's e-mail or phone in the CRM.")
    async def update_customer_contact(self, info: GatewayInfo,
                                      input: Annotated[UpdateCustomerContactInput, strawberry.argument(
                                          description="Which customer, and what to change.")],
                                      ) -> UpdateCustomerContactPayload:
        key = typed_id_argument(input.customer, "Customer", customers.KEY, "input.customer")
        _check_text(input.email, "input.email", MAX_EMAIL_CHARS)
        _check_text(input.phone, "input.phone", MAX_PHONE_CHARS)
        changes: dict[str, str | None] = {}
        try:
            if input.email is not strawberry.UNSET:
                if input.email is None or clean_email(input.email) is None:
                    raise bad_input("`email` cannot be cleared")
                changes["email"] = clean_email(input.email)
            if input.phone is not strawberry.UNSET:
                number = clean_phone(info.context.services.phone_region)(input.phone)
                if input.phone is not None and number is None:
                    raise bad_input("`phone` is not a phone number")
                changes["phone"] = number
        except MappingError as exc:
            raise bad_input(f"invalid contact data: {exc}") from None
        if not changes:
            raise bad_input("give `email` or `phone`")
        found = (await customers.by_keys(info, [key]))[0]
        if found is None:
            raise bad_input("no such customer")
        if found.crm_id is None:
            raise bad_input("this customer has no CRM record to change")
        ctx = info.context
        updated = await ctx.services.crm.update_customer(found.crm_id, changes,
                                                         idempotency_key=ctx.idempotency_key_for(info.field_name))
        # Whatever this request read before, its answer shows the record as the CRM now has it.
        ctx.loaders.get(ctx.services.crm.customers, None).prime(found.crm_id, updated, force=True)
        return UpdateCustomerContactPayload(customer=found)

    @strawberry.mutation(description="Place a sales order: checks the customer's status and credit, prices each line "
                                     "from the item master and allocates the stock in the ERP in one transaction, "
                                     "then records an `order` interaction in the CRM (retried until the CRM takes "
                                     "it). Needs `orders:write`.")
    async def place_order(self, info: GatewayInfo, input: Annotated[PlaceOrderInput, strawberry.argument(
                              description="The customer, the lines, the warehouse and your reference.")],
                          ) -> PlaceOrderPayload | None:
        customer = key_argument(input.customer, keys.CUSTOMER_NUMBER, "input.customer")
        warehouse = key_argument(input.warehouse, keys.WAREHOUSE_CODE, "input.warehouse")
        lines = _lines(input.lines, "input.lines")
        _check_text(input.reference, "input.reference", MAX_REFERENCE_CHARS)
        outcome = await ops.run(info, orders.PLACE_ORDER,
                                orders.place_order_command(customer, lines, warehouse, input.reference))
        return PlaceOrderPayload(order=_order(outcome, "write_erp_order"), user_errors=_user_errors(outcome),
                                 saga=saga_for(info, outcome))

    @strawberry.mutation(description="Cancel an open or allocated order: releases its stock allocation in the ERP, "
                                     "then records the cancellation in the CRM. Needs `orders:write`.")
    async def cancel_order(self, info: GatewayInfo,
                           number: Annotated[str, strawberry.argument(description="The order number.")],
                           reason: Annotated[str | None, strawberry.argument(
                               description="Why, for the CRM's record (at most 200 printable characters).")] = None,
                           ) -> CancelOrderPayload | None:
        order = key_argument(number, keys.ORDER_NUMBER, "number")
        _check_text(reason, "reason", MAX_REASON_CHARS)
        outcome = await ops.run(info, orders.CANCEL_ORDER, orders.cancel_order_command(order, reason))
        return CancelOrderPayload(order=_order(outcome, "cancel_erp_order"), user_errors=_user_errors(outcome),
                                  saga=saga_for(info, outcome))

    @strawberry.mutation(description="Ship an order: books it with the carrier, then marks it shipped in the ERP "
                                     "(taking its stock off hand). If the ERP cannot take it, the booking is "
                                     "cancelled and the error says so. Needs `shipments:write`.")
    async def book_shipment(self, info: GatewayInfo,
                            order: Annotated[str, strawberry.argument(description="The order number.")],
                            carrier: Annotated[str, strawberry.argument(
                                description="The carrier's vendor code (a `Partner` of kind CARRIER).")],
                            ) -> BookShipmentPayload | None:
        number = key_argument(order, keys.ORDER_NUMBER, "order")
        code = key_argument(carrier, keys.VENDOR_CODE, "carrier")
        outcome = await ops.run(info, shipments.BOOK_SHIPMENT, shipments.book_shipment_command(number, code))
        booked = ops.result(outcome, "book_with_carrier")
        return BookShipmentPayload(
            shipment=None if booked is None else Shipment.of(records.to_shipment(booked["shipment"])),
            order=_order(outcome, "mark_erp_order_shipped"), user_errors=_user_errors(outcome),
            saga=saga_for(info, outcome))

    @strawberry.mutation(description="Order goods from a supplier through its portal (priced at its current offers). "
                                     "Needs `purchase_orders:write`.")
    async def create_purchase_order(self, info: GatewayInfo, input: Annotated[
                                        CreatePurchaseOrderInput, strawberry.argument(
                                            description="The supplier, the lines and when they are wanted.")],
                                    ) -> PurchaseOrderPayload | None:
        supplier = key_argument(input.supplier, keys.VENDOR_CODE, "input.supplier")
        lines = _lines(input.lines, "input.lines")
        outcome = await ops.run(info, purchase_orders.CREATE_PURCHASE_ORDER,
                                purchase_orders.create_command(supplier, lines, input.expected_on))
        return PurchaseOrderPayload(purchase_order=_purchase_order(outcome, "create_at_supplier"),
                                    user_errors=_user_errors(outcome), saga=saga_for(info, outcome))

    @strawberry.mutation(description="Book goods received against a purchase order: adds them to the warehouse's "
                                     "stock on hand in the ERP, then records the receipt at the supplier's portal. "
                                     "Needs `purchase_orders:write`.")
    async def receive_purchase_order(self, info: GatewayInfo, input: Annotated[
                                         ReceivePurchaseOrderInput, strawberry.argument(
                                             description="The purchase order, the warehouse, what arrived.")],
                                     ) -> PurchaseOrderPayload | None:
        number = key_argument(input.number, keys.PO_NUMBER, "input.number")
        warehouse = key_argument(input.warehouse, keys.WAREHOUSE_CODE, "input.warehouse")
        lines = _lines(input.lines, "input.lines")
        outcome = await ops.run(info, purchase_orders.RECEIVE_PURCHASE_ORDER,
                                purchase_orders.receive_command(number, warehouse, lines))
        stocked = ops.result(outcome, "add_erp_stock")
        warehouses = await info.context.services.erp.warehouses(None) if stocked else {}
        stock = None if stocked is None else [
            StockLevel.of(level, Warehouse.of(warehouses[level.warehouse]) if level.warehouse in warehouses else None)
            for level in (records.to_stock(raw) for raw in stocked["stock"])]
        return PurchaseOrderPayload(purchase_order=_purchase_order(outcome, "record_receipt_at_supplier"),
                                    stock=stock, user_errors=_user_errors(outcome), saga=saga_for(info, outcome))

    @strawberry.mutation(description="For suppliers: confirm one of your purchase orders, optionally with the date "
                                     "you expect to deliver. Needs a supplier partner token with "
                                     "`purchase_orders:confirm`, and a trusted document.")
    async def confirm_purchase_order(self, info: GatewayInfo,
                                     number: Annotated[str, strawberry.argument(
                                         description="The purchase order number.")],
                                     expected_on: Annotated[date | None, strawberry.argument(
                                         description="When you expect to deliver.")] = None,
                                     ) -> PurchaseOrderPayload | None:
        principal = info.context.principal
        if not principal.partner:
            raise forbidden("only the supplier confirms its purchase orders: use the supplier's partner token")
        po_number = key_argument(number, keys.PO_NUMBER, "number")
        found = (await info.context.loaders.load_many(info.context.services.supplier.purchase_orders, [po_number]))[0]
        if found is None or not visible_purchase_orders(principal, [found]):
            # Another supplier's purchase order is as absent as one that does not exist.
            raise GraphQLError(f"no purchase order {po_number}", extensions={"code": "NOT_FOUND"})
        outcome = await ops.run(info, purchase_orders.CONFIRM_PURCHASE_ORDER,
                                purchase_orders.confirm_command(po_number, expected_on))
        return PurchaseOrderPayload(purchase_order=_purchase_order(outcome, "confirm_at_supplier"),
                                    user_errors=_user_errors(outcome), saga=saga_for(info, outcome))
