"""Writes. Each one changes one system and forgets what the cache held about what it changed."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers import customer as customers
from schema.types.common import GatewayInfo, bad_input, typed_id_argument
from schema.types.customer import Customer
from sources.errors import MappingError
from sources.mapping import email as clean_email
from sources.mapping import phone as clean_phone

#: Longest contact data read: RFC 5321's limit for an address, and more than any phone number needs. Longer
#: text is refused before it is parsed, sent on or quoted back in an error.
MAX_EMAIL_CHARS = 254
MAX_PHONE_CHARS = 40


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


@strawberry.type(description="Writes. Each changes one upstream system, which gets the caller's `Idempotency-Key` "
                              "header (if sent) to recognise a retry.")
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
