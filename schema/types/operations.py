"""Types of the business operations: inputs, payloads with typed user errors, and the saga behind each."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime

import strawberry

from operations.saga import Outcome, SagaState, StepState
from operations.store import SagaRow, StepRow
from schema.types.common import GatewayInfo, describe_enum
from schema.types.order import Order, Shipment
from schema.types.partner import PurchaseOrder
from schema.types.product import StockLevel


class UserErrorCode(enum.Enum):
    UNKNOWN_CUSTOMER = "UNKNOWN_CUSTOMER"
    CUSTOMER_INACTIVE = "CUSTOMER_INACTIVE"
    CREDIT_LIMIT_EXCEEDED = "CREDIT_LIMIT_EXCEEDED"
    CURRENCY_NOT_PRICED = "CURRENCY_NOT_PRICED"
    UNKNOWN_WAREHOUSE = "UNKNOWN_WAREHOUSE"
    UNKNOWN_SKU = "UNKNOWN_SKU"
    DUPLICATE_SKU = "DUPLICATE_SKU"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    NO_LINES = "NO_LINES"
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    ORDER_NOT_CANCELLABLE = "ORDER_NOT_CANCELLABLE"
    ORDER_NOT_SHIPPABLE = "ORDER_NOT_SHIPPABLE"
    UNKNOWN_CARRIER = "UNKNOWN_CARRIER"
    UNKNOWN_SUPPLIER = "UNKNOWN_SUPPLIER"
    PURCHASE_ORDER_NOT_FOUND = "PURCHASE_ORDER_NOT_FOUND"
    PURCHASE_ORDER_NOT_RECEIVABLE = "PURCHASE_ORDER_NOT_RECEIVABLE"
    PURCHASE_ORDER_NOT_CONFIRMABLE = "PURCHASE_ORDER_NOT_CONFIRMABLE"
    QUANTITY_EXCEEDS_ORDER = "QUANTITY_EXCEEDS_ORDER"
    RULE_VIOLATED = "RULE_VIOLATED"


describe_enum(UserErrorCode, "Why a business rule refused an operation. Nothing was changed; the same input gets the "
                             "same answer until the data it depends on changes.", {
    "UNKNOWN_CUSTOMER": "No ERP customer has this number.",
    "CUSTOMER_INACTIVE": "The customer's ERP account is inactive (CUSMAS.CMSTAT I): it cannot order.",
    "CREDIT_LIMIT_EXCEEDED": "The order's total is more than the customer's credit limit minus its balance and its "
                             "open orders; the message says what is left.",
    "CURRENCY_NOT_PRICED": "The customer is billed in a currency the item master has no prices in.",
    "UNKNOWN_WAREHOUSE": "No ERP warehouse has this code.",
    "UNKNOWN_SKU": "No item has this SKU (or, for a receipt, it is not on the purchase order).",
    "DUPLICATE_SKU": "The same SKU is on two lines; give each once.",
    "INVALID_QUANTITY": "A quantity below 1.",
    "NO_LINES": "An order without lines.",
    "INSUFFICIENT_STOCK": "The warehouse has less available (on hand minus allocated) than the line asks for, or, "
                          "for `bookShipment`, less on hand than the order ships; the message says how much there "
                          "is.",
    "ORDER_NOT_FOUND": "No order has this number.",
    "ORDER_NOT_CANCELLABLE": "Only open or allocated orders can be cancelled; the message says what it is now.",
    "ORDER_NOT_SHIPPABLE": "Only open or allocated orders can be shipped; the message says what it is now.",
    "UNKNOWN_CARRIER": "No carrier (a partner of kind CARRIER) has this code.",
    "UNKNOWN_SUPPLIER": "No supplier (a partner of kind SUPPLIER) has this code.",
    "PURCHASE_ORDER_NOT_FOUND": "The supplier portal has no purchase order with this number.",
    "PURCHASE_ORDER_NOT_RECEIVABLE": "The purchase order is cancelled or fully received.",
    "PURCHASE_ORDER_NOT_CONFIRMABLE": "Only sent or confirmed purchase orders can be confirmed.",
    "QUANTITY_EXCEEDS_ORDER": "More received than is still open on the purchase order line.",
    "RULE_VIOLATED": "Another rule of the system written to; the message says which.",
})


@strawberry.type(description="A business rule's refusal, about one part of the input.")
class UserError:
    code: UserErrorCode = strawberry.field(description="What was refused; stable, for programs to branch on.")
    field: str | None = strawberry.field(description="The input it is about, as a dotted path "
                                                     "(`input.lines.2.quantity`); null when it is the whole input.")
    message: str = strawberry.field(description="For people: what was wrong, with the numbers involved.")


describe_enum(SagaState, "Where a business operation stands.", {
    "RUNNING": "Under way.",
    "PENDING": "Done where it matters (the ERP); a later step, such as the CRM's record, is retried until it "
               "succeeds.",
    "COMPENSATING": "Being undone, or an uncertain step is being settled, in the background.",
    "COMPLETED": "Done in every system.",
    "REJECTED": "A business rule refused it; anything done before was undone.",
    "FAILED": "A system failed before the point of no return; anything done before was undone.",
    "NEEDS_ATTENTION": "Could neither be completed nor undone: a person must look (`gateway sagas list`).",
})
describe_enum(StepState, "Where one step of a business operation stands.", {
    "PENDING": "Not started.",
    "RUNNING": "Under way.",
    "DONE": "Done.",
    "FAILED": "Failed without changing anything.",
    "UNKNOWN": "Failed in a way that may have applied it; the saga asks the system again under the same "
               "idempotency key.",
    "RETRYING": "Failed after the point of no return; it is retried until it succeeds.",
    "COMPENSATING": "Being undone.",
    "COMPENSATED": "Undone.",
}, name="SagaStepState")


@strawberry.type(description="One step of a business operation, as the saga log holds it.")
class SagaStep:
    name: str = strawberry.field(description="The step, e.g. `write_erp_order`, `record_crm_interaction`.")
    state: StepState = strawberry.field(description="Where the step stands.")
    attempts: int = strawberry.field(description="How often it (or its compensation) was started; each start tries "
                                                 "up to `operations.inline_attempts` times in place.")
    error: str | None = strawberry.field(description="Why its last attempt failed, if it did.")

    @classmethod
    def of(cls, row: StepRow) -> SagaStep:
        error = row.error.get("message") if isinstance(row.error, dict) else None
        return cls(name=row.name, state=StepState(row.state), attempts=row.attempts, error=error)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@strawberry.type(description="A business operation's saga: its steps across the systems and where each stands.")
class Saga:
    id: strawberry.ID = strawberry.field(description="The saga's id, as `gateway sagas list` shows it.")
    kind: str = strawberry.field(description="The operation: `placeOrder`, `bookShipment`, ...")
    state: SagaState = strawberry.field(description="Where it stands.")
    steps: list[SagaStep] = strawberry.field(description="Its steps in order.")
    error_code: str | None = strawberry.field(description="The code of the failure that stopped or undid it.")
    error: str | None = strawberry.field(description="What stopped or undid it, if anything.")
    attempts: int | None = strawberry.field(default=None, description="How often it was driven (admin view).")
    created_at: datetime | None = strawberry.field(default=None, description="When it started (admin view).")
    updated_at: datetime | None = strawberry.field(default=None, description="When it last changed (admin view).")
    next_attempt_at: datetime | None = strawberry.field(default=None, description="When it is retried next, if it "
                                                                                  "is waiting (admin view).")

    @classmethod
    def of(cls, outcome: Outcome) -> Saga:
        error = outcome.error or {}
        return cls(id=strawberry.ID(outcome.id), kind=outcome.kind, state=outcome.state,
                   steps=[SagaStep.of(s) for s in outcome.steps], error_code=error.get("code"),
                   error=error.get("attention") or error.get("message"))

    @classmethod
    def of_row(cls, row: SagaRow) -> Saga:
        saga = cls.of(Outcome.of(row))
        saga.attempts = row.attempts
        saga.created_at, saga.updated_at = _at(row.created_ms), _at(row.updated_ms)
        saga.next_attempt_at = None if row.next_attempt_ms is None else _at(row.next_attempt_ms)
        return saga


@strawberry.interface(description="What every business operation answers.")
class OperationPayload:
    user_errors: list[UserError] = strawberry.field(description="Business rules that refused the operation; empty "
                                                                "when it was accepted. Nothing changed when "
                                                                "there are any.")
    saga: Saga | None = strawberry.field(description="The saga that carried it out, step by step (staff only: "
                                                     "null for partners).")


@strawberry.input(description="One line of a new sales order.")
class OrderLineInput:
    sku: str = strawberry.field(description="The product's SKU (`Product.sku`).")
    quantity: int = strawberry.field(description="Units of the product's unit of measure, at least 1.")


@strawberry.input(description="A new sales order.")
class PlaceOrderInput:
    customer: str = strawberry.field(description="The ERP customer number (`Customer.number`).")
    lines: list[OrderLineInput] = strawberry.field(description="1 to 100 lines, each SKU once.")
    warehouse: str = strawberry.field(description="The warehouse code to allocate the stock in (`Warehouse.code`).")
    reference: str | None = strawberry.field(default=None, description="The customer's own reference for the "
                                                                      "order (their PO number), at most 40 "
                                                                      "printable characters; recorded in the CRM.")


@strawberry.type(description="The result of `placeOrder`.")
class PlaceOrderPayload(OperationPayload):
    order: Order | None = strawberry.field(description="The order as the ERP now holds it (status ALLOCATED); "
                                                       "null when the operation was refused.")


@strawberry.type(description="The result of `cancelOrder`.")
class CancelOrderPayload(OperationPayload):
    order: Order | None = strawberry.field(description="The order, now CANCELLED; null when refused.")


@strawberry.type(description="The result of `bookShipment`.")
class BookShipmentPayload(OperationPayload):
    shipment: Shipment | None = strawberry.field(description="The carrier's booking; null when refused.")
    order: Order | None = strawberry.field(description="The order, now SHIPPED; null when refused.")


@strawberry.input(description="One line of a new purchase order.")
class PurchaseOrderLineInput:
    sku: str = strawberry.field(description="The product's SKU.")
    quantity: int = strawberry.field(description="Units to order, at least 1.")


@strawberry.input(description="A new purchase order to a supplier.")
class CreatePurchaseOrderInput:
    supplier: str = strawberry.field(description="The supplier's vendor code (`Partner.code`).")
    lines: list[PurchaseOrderLineInput] = strawberry.field(description="1 to 100 lines, each SKU once; priced at "
                                                                       "the supplier's current offer.")
    expected_on: date | None = strawberry.field(default=None, description="When the goods are wanted.")


@strawberry.type(description="The result of `createPurchaseOrder`, `receivePurchaseOrder` and "
                              "`confirmPurchaseOrder`.")
class PurchaseOrderPayload(OperationPayload):
    purchase_order: PurchaseOrder | None = strawberry.field(description="The purchase order as the supplier portal "
                                                                        "now holds it; null when refused.")
    stock: list[StockLevel] | None = strawberry.field(default=None, description="`receivePurchaseOrder` only: the "
                                                                                "stock levels after the receipt.")


@strawberry.input(description="Goods received against a purchase order.")
class ReceivePurchaseOrderInput:
    number: str = strawberry.field(description="The purchase order number.")
    warehouse: str = strawberry.field(description="The warehouse the goods went into.")
    lines: list[PurchaseOrderLineInput] = strawberry.field(description="What arrived: each SKU once, at most what "
                                                                       "is still open on the purchase order.")


def saga_for(info: GatewayInfo, outcome: Outcome) -> Saga | None:
    """The saga, for staff; partners are not shown the gateway's internal steps."""
    return None if info.context.principal.partner else Saga.of(outcome)
