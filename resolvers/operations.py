"""Mutations of business operations: GraphQL input to a command, the saga's outcome back to a payload.

A refusal by a business rule is the payload's `userErrors`; a system failure that stopped the operation
is a top-level error with its code, saying what was undone and naming the saga (`extensions.saga`).
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError

from operations.saga import Outcome, SagaBusy, SagaConflict, SagaState, StepState
from operations.service import Operations
from schema.types.common import GatewayInfo
from sources.errors import RuleViolation


def operations_of(info: GatewayInfo) -> Operations:
    found: Operations | None = info.context.services.operations
    if found is None:  # every served gateway builds them (gateway.services): this is a wiring bug
        raise RuntimeError("the gateway was built without its operations layer")
    return found


async def run(info: GatewayInfo, kind: str, command: dict[str, Any]) -> Outcome:
    """Run (or, for a retried request, look up) the operation's saga; raise for what stopped it."""
    ctx = info.context
    try:
        outcome = await operations_of(info).run(kind, ctx.idempotency_key_for(kind), command, ctx.principal,
                                                ctx.request_id)
    except SagaConflict:
        raise GraphQLError("this Idempotency-Key was used for another operation; send a new key",
                           extensions={"code": "IDEMPOTENCY_KEY_REUSED"}) from None
    except SagaBusy:
        raise GraphQLError("the operation with this Idempotency-Key is still running; retry shortly",
                           extensions={"code": "IDEMPOTENCY_KEY_IN_USE"}) from None
    ctx.sagas.append(outcome)
    if outcome.committed or outcome.rejection is not None:
        return outcome  # done, or done where it counts (a later step waits or needs a person: see `saga`)
    raise _failure(info, outcome)


def _failure(info: GatewayInfo, outcome: Outcome) -> GraphQLError:
    error = dict(outcome.error or {})
    undone = [s.name for s in outcome.steps if s.state == StepState.COMPENSATED]
    message = str(error.get("message") or "the operation failed")
    if outcome.state is SagaState.FAILED:
        message += f"; undone: {', '.join(undone)}" if undone else "; nothing was changed"
    elif outcome.state is SagaState.COMPENSATING:
        message += ("; it is being settled in the background: retry with the same Idempotency-Key for its "
                    "outcome, never with a new one")
    elif outcome.state is SagaState.NEEDS_ATTENTION:
        message += f"; it needs attention ({error.get('attention', 'see the saga')})"
    extensions: dict[str, Any] = {"code": error.get("code", "INTERNAL_ERROR")}
    if not info.context.principal.partner:  # partners are not shown the gateway's systems and steps
        if error.get("source"):
            extensions["source"] = error["source"]
        extensions["saga"] = {"id": outcome.id, "state": outcome.state.value,
                              "steps": {s.name: s.state for s in outcome.steps}}
    return GraphQLError(message, extensions=extensions)


def user_errors(outcome: Outcome) -> list[RuleViolation]:
    found = outcome.rejection
    return [] if found is None else [found]


def result(outcome: Outcome, step: str) -> dict[str, Any] | None:
    """A step's logged result, once the operation has happened (None for a refused or undone one)."""
    found = outcome.results.get(step)
    return dict(found) if isinstance(found, dict) and outcome.committed else None
