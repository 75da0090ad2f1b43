"""Turn errors into what clients may see: a stable `extensions.code`, no internals.

Source failures name the source and a code (SOURCE_UNAVAILABLE, SOURCE_TIMEOUT, ...); bad cursors and
variables that do not fit their types are BAD_USER_INPUT; anything unexpected becomes INTERNAL_ERROR with
the request id, and its details go to the log only, as one compact event. Parse and validation errors keep
graphql-core's message and get GRAPHQL_VALIDATION_FAILED.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult

from sources.errors import SourceError
from sources.tasks import failure_fields

log = structlog.get_logger("gateway.errors")


def classify(error: GraphQLError, request_id: str) -> GraphQLError:
    original = error.original_error
    if original is None:
        if error.extensions and "code" in error.extensions:
            return error
        code = "GRAPHQL_PARSE_FAILED" if error.message.startswith("Syntax Error") else "GRAPHQL_VALIDATION_FAILED"
        return _with(error, error.message, {"code": code})
    if isinstance(original, GraphQLError) and original.extensions and "code" in original.extensions:
        return _with(error, original.message, dict(original.extensions))
    if isinstance(original, GraphQLError):
        # graphql-core's and strawberry's own input errors (a variable of the wrong type, a null for a
        # non-null input field): written for the client, and about what it sent.
        return _with(error, error.message, {"code": "BAD_USER_INPUT"})
    if isinstance(original, SourceError):
        log.warning("source_error", request_id=request_id, source=original.source, code=original.code,
                    detail=original.detail, path=error.path)
        return _with(error, original.public_message, {"code": original.code, "source": original.source})
    if isinstance(original, ValueError) and str(original) == "malformed cursor":
        return _with(error, "The `after` cursor is not one this API issued", {"code": "BAD_USER_INPUT"})
    # Plain fields, never `exc_info`: an unconfigured structlog renders that with rich, every frame's
    # local variables included (thousands of lines, a second or two of blocking the event loop).
    log.error("unexpected_error", request_id=request_id, path=error.path, **failure_fields(original))
    return _with(error, "Internal error", {"code": "INTERNAL_ERROR", "requestId": request_id})


def _with(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(message, nodes=error.nodes, source=error.source, positions=error.positions,
                        path=error.path, original_error=None, extensions=extensions)


class ErrorCodes(SchemaExtension):
    """Applies `classify` to every error of an operation."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if isinstance(result, ExecutionResult | GraphQLExecutionResult) and result.errors:
            request_id = getattr(self.execution_context.context, "request_id", "-")
            result.errors = [classify(e, request_id) for e in result.errors]
