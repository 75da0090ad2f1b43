"""Writes. Each one changes one system and forgets what the cache held about what it changed."""

from __future__ import annotations

import strawberry
from strawberry import relay

from resolvers import customer as customers
from schema.types.common import GatewayInfo, bad_input
from schema.types.customer import Customer
from sources.errors import MappingError
from sources.mapping import email as clean_email
from sources.mapping import phone as clean_phone


@strawberry.input(description="New contact data; a field left out is not changed, `null` clears the phone.")
class UpdateCustomerContactInput:
    customer: relay.GlobalID
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET


@strawberry.type
class UpdateCustomerContactPayload:
    customer: Customer | None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Change a customer's e-mail or phone in the CRM.")
    async def update_customer_contact(self, info: GatewayInfo,
                                      input: UpdateCustomerContactInput) -> UpdateCustomerContactPayload:
        if input.customer.type_name != "Customer":
            raise bad_input("`customer` must be a Customer id")
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
        found = (await customers.by_keys(info, [input.customer.node_id]))[0]
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
