"""Turn errors into what clients may see: a stable `extensions.code`, no internals.

Source failures name the source and a code (SOURCE_UNAVAILABLE, SOURCE_TIMEOUT, ...); bad cursors are
BAD_USER_INPUT; anything unexpected becomes INTERNAL_ERROR with the request id, and its details go to
the log only. Parse and validation errors keep graphql-core's message and get GRAPHQL_VALIDATION_FAILED.
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
    if isinstance(original, SourceError):
        log.warning("source_error", request_id=request_id, source=original.source, code=original.code,
                    detail=original.detail, path=error.path)
        return _with(error, original.public_message, {"code": original.code, "source": original.source})
    if isinstance(original, ValueError) and str(original) == "malformed cursor":
        return _with(error, "The `after` cursor is not one this API issued", {"code": "BAD_USER_INPUT"})
    log.error("unexpected_error", request_id=request_id, path=error.path, exc_info=original)
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
