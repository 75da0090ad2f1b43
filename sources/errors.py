"""Errors a source raises. Each carries a stable `code` that reaches clients as `extensions.code`."""

from __future__ import annotations


class SourceError(Exception):
    """An upstream system could not answer as asked."""

    code = "SOURCE_ERROR"

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.detail = message

    @property
    def public_message(self) -> str:
        """What a client may read: names the source, never its URL, SQL or credentials."""
        return f"Source '{self.source}' is unavailable"


class SourceUnavailable(SourceError):
    code = "SOURCE_UNAVAILABLE"

    def __init__(self, source: str, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(source, message)
        self.retry_after_s = retry_after_s  # what the upstream asked for (429, 503), if anything


class SourceTimeout(SourceError):
    code = "SOURCE_TIMEOUT"

    @property
    def public_message(self) -> str:
        return f"Source '{self.source}' did not answer in time"


class UpstreamBadResponse(SourceError):
    """The upstream answered, but not in the shape its mapping expects."""

    code = "UPSTREAM_BAD_RESPONSE"

    @property
    def public_message(self) -> str:
        return f"Source '{self.source}' sent an answer the gateway could not read"


class UpstreamRejected(SourceError):
    """The upstream refused a write as invalid (4xx). Its reason is safe to show: it is about the input."""

    code = "UPSTREAM_REJECTED"

    def __init__(self, source: str, status: int, reason: str) -> None:
        super().__init__(source, f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason

    @property
    def public_message(self) -> str:
        return f"Source '{self.source}' refused the change: {self.reason}"


class MappingError(ValueError):
    """A raw value could not be converted to its clean type."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"field {field!r}: {reason} (got {value!r})")
        self.field = field
        self.value = value


class RuleViolation(Exception):
    """A business rule refused a write (not enough stock, over the credit limit, an order that cannot be
    cancelled): nothing was changed, and retrying the same write will not help. Operations report it to
    the client as a payload `userErrors` entry, never as a system failure.

    `code` is one of the documented user error codes; `field` is the input path it is about, if any
    (`input.lines.2.quantity`).
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field
