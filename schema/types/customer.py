"""Customer and the CRM-side types that hang off it."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from resolvers import customer as resolve
from resolvers.permissions import check_node_type
from schema.types.common import (
    After,
    Connection,
    CustomerStatus,
    First,
    GatewayInfo,
    InteractionKind,
    Money,
    OrderStatus,
    PaymentTerms,
    Segment,
    empty_connection,
    page_size,
    to_connection,
)
from sources.crm import INTERACTION_CURSOR, InteractionQuery
from sources.crm import Interaction as InteractionRecord
from sources.erp import CUSTOMER_ORDER_CURSOR, OrderQuery

if TYPE_CHECKING:
    from schema.types.order import Order

OrderRef = Annotated["Order", strawberry.lazy("schema.types.order")]


@strawberry.type(description="The account manager the CRM assigns to a customer.")
class AccountManager:
    name: str = strawberry.field(description="Full name, from the CRM.")
    email: str | None = strawberry.field(description="Work e-mail, lower-cased; null if the CRM has none.")


@strawberry.type(description="A call, e-mail, ticket or meeting logged in the CRM.")
class Interaction:
    kind: InteractionKind = strawberry.field(description="Call, e-mail, ticket or meeting.")
    at: datetime.datetime = strawberry.field(description="When it happened (ISO 8601 with offset, from the CRM).")
    summary: str = strawberry.field(description="The subject line the agent wrote in the CRM.")
    agent: str | None = strawberry.field(description="The company's employee who handled it; null if not recorded.")

    @classmethod
    def of(cls, r: InteractionRecord) -> Interaction:
        return cls(kind=r.kind, at=r.at, summary=r.summary, agent=r.agent)


@strawberry.input(description="Order filters. Dates are inclusive.")
class OrderFilter:
    statuses: list[OrderStatus] | None = strawberry.field(
        default=None, description="Only orders in one of these statuses; none or null: any status.")
    placed_from: datetime.date | None = strawberry.field(
        default=None, description="Only orders placed on or after this day (YYYY-MM-DD).")
    placed_to: datetime.date | None = strawberry.field(
        default=None, description="Only orders placed on or before this day (YYYY-MM-DD).")


@strawberry.type(description="A customer as the business sees it: CRM contact data and ERP credit and orders in one.")
class Customer(relay.Node):
    key: relay.NodeID[str]
    erp_number: strawberry.Private[str | None]
    crm_id: strawberry.Private[str | None]

    @strawberry.field(description="The ERP customer number; null for customers only the CRM knows.")
    def number(self) -> str | None:
        return self.erp_number

    @strawberry.field(name="crmId", description="The CRM record's id; null for customers the CRM does not know.")
    def crm_reference(self) -> str | None:
        return self.crm_id

    @strawberry.field(description="The CRM's name; the ERP's when the CRM has no record or cannot answer.")
    async def name(self, info: GatewayInfo) -> str | None:
        return await resolve.name(info, self)

    @strawberry.field(description="Lower-cased e-mail of the main contact.")
    async def email(self, info: GatewayInfo) -> str | None:
        crm = await resolve.crm_record(info, self)
        return crm.email if crm else None

    @strawberry.field(description="Phone in E.164 form (CRM first, ERP as fallback).")
    async def phone(self, info: GatewayInfo) -> str | None:
        return await resolve.phone(info, self)

    @strawberry.field(description="The main contact person's first and last name, from the CRM (personal data: "
                                  "needs `customers:pii`).")
    async def contact_name(self, info: GatewayInfo) -> str | None:
        crm = await resolve.crm_record(info, self)
        return crm.contact_name if crm else None

    @strawberry.field(description="Market segment from the CRM; null if the CRM has no record or no segment.")
    async def segment(self, info: GatewayInfo) -> Segment | None:
        crm = await resolve.crm_record(info, self)
        return crm.segment if crm else None

    @strawberry.field(description="The employee the CRM assigns to this account; null if none is assigned.")
    async def account_manager(self, info: GatewayInfo) -> AccountManager | None:
        crm = await resolve.crm_record(info, self)
        if crm is None or crm.account_manager is None:
            return None
        return AccountManager(name=crm.account_manager.name, email=crm.account_manager.email)

    @strawberry.field(description="Credit limit from the ERP (CUSMAS.CMCRLM, stored in cents), exact amount in the "
                                  "account's currency; null for customers only the CRM knows.")
    async def credit_limit(self, info: GatewayInfo) -> Money | None:
        erp = await resolve.erp_record(info, self)
        return Money.of(erp.credit_limit) if erp else None

    @strawberry.field(description="Open balance on the customer's account.")
    async def balance(self, info: GatewayInfo) -> Money | None:
        erp = await resolve.erp_record(info, self)
        return Money.of(erp.balance) if erp else None

    @strawberry.field(description="Credit limit minus balance.")
    async def available_credit(self, info: GatewayInfo) -> Money | None:
        erp = await resolve.erp_record(info, self)
        if erp is None:
            return None
        return Money(amount=erp.credit_limit.amount - erp.balance.amount, currency=erp.credit_limit.currency)

    @strawberry.field(description="When the customer pays its invoices (ERP CUSMAS.CMTERM); null for customers only "
                                  "the CRM knows.")
    async def payment_terms(self, info: GatewayInfo) -> PaymentTerms | None:
        erp = await resolve.erp_record(info, self)
        return erp.terms if erp else None

    @strawberry.field(description="The ERP account's status (CUSMAS.CMSTAT); null for customers only the CRM knows.")
    async def status(self, info: GatewayInfo) -> CustomerStatus | None:
        erp = await resolve.erp_record(info, self)
        return erp.status if erp else None

    @strawberry.field(description="The customer's orders, newest first.")
    async def orders(self, info: GatewayInfo, first: First = 10, after: After = None,
                     filter: Annotated[OrderFilter | None, strawberry.argument(
                         description="Only the orders that match every condition given.")] = None,
                     ) -> Connection[OrderRef] | None:
        from schema.types.order import Order

        query = OrderQuery(
            first=page_size(info, first), after=after,
            statuses=tuple(filter.statuses or ()) if filter else (),
            placed_from=filter.placed_from if filter else None, placed_to=filter.placed_to if filter else None)
        if self.erp_number is None:
            CUSTOMER_ORDER_CURSOR.after(after)  # a cursor it did not issue is refused here too
            return empty_connection()
        ctx = info.context
        result = await ctx.loaders.load(ctx.services.erp.orders_of_customers, self.erp_number, query)
        return to_connection(result, Order.of) if result else empty_connection()

    @strawberry.field(description="CRM interactions, newest first.")
    async def interactions(self, info: GatewayInfo, first: First = 10, after: After = None,
                           kind: Annotated[InteractionKind | None, strawberry.argument(
                               description="Only interactions of this kind; null: all kinds.")] = None,
                           ) -> Connection[Interaction] | None:
        query = InteractionQuery(first=page_size(info, first), after=after,
                                 kind=kind)
        if self.crm_id is None:
            INTERACTION_CURSOR.after(after)  # a cursor it did not issue is refused here too
            return empty_connection()
        ctx = info.context
        result = await ctx.loaders.load(ctx.services.crm.interactions_of, self.crm_id, query)
        return to_connection(result, Interaction.of) if result else empty_connection()

    @classmethod
    async def resolve_nodes(cls, *, info: GatewayInfo, node_ids: Iterable[str],
                            required: bool = False) -> list[Customer | None]:
        check_node_type(info, "Customer")
        return await resolve.by_keys(info, node_ids)
