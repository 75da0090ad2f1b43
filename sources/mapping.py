"""Declarative mapping from raw upstream rows to clean records.

A `RecordMap` says, once per entity, which raw field (a column, or a dotted path into JSON) becomes
which clean field, through which converter. Converters are small pure functions, so each one is tested
on its own and a new legacy quirk is one more converter, not new adapter code.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

import phonenumbers

from sources.errors import MappingError, UpstreamBadResponse
from sources.values import Money

R = TypeVar("R")
E = TypeVar("E", bound=enum.Enum)
Converter = Callable[..., Any]


# --- converters -------------------------------------------------------------------------------------

def identity(value: Any) -> Any:
    return value


def strip(value: str | None) -> str | None:
    """Trim legacy CHAR padding; a blank value is no value."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise MappingError("strip", value, "expected text")
    return value.strip() or None


def text(value: str | None) -> str:
    """Trimmed text that must be present."""
    cleaned = strip(value)
    if cleaned is None:
        raise MappingError("text", value, "required text is missing")
    return cleaned


def title_text(value: str | None) -> str | None:
    """Legacy upper-case descriptions in a readable case, keeping codes such as 2RS or HD intact."""
    cleaned = strip(value)
    if cleaned is None:
        return None
    return " ".join(w.capitalize() if w.isalpha() and len(w) > 3 else w for w in cleaned.split())


def integer(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise MappingError("integer", value, "expected a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise MappingError("integer", value, "expected a whole number")


def email(value: str | None) -> str | None:
    """E-mail addresses compare case-insensitively in practice; publish them lower-cased."""
    cleaned = strip(value)
    if cleaned is None:
        return None
    if cleaned.count("@") != 1:
        raise MappingError("email", value, "not an e-mail address")
    return cleaned.lower()


def phone(region: str = "US") -> Converter:
    """Any human or legacy phone format to E.164; unusable numbers become None rather than junk."""

    @functools.lru_cache(maxsize=65_536)  # parsing is slow and the same customers' numbers recur
    def parse(value: str) -> str | None:
        return convert(value)

    def cached(value: str | None) -> str | None:
        return parse(value) if isinstance(value, str) else convert(value)

    def convert(value: str | None) -> str | None:
        cleaned = strip(value)
        if cleaned is None:
            return None
        digits = re.sub(r"\D", "", cleaned)
        candidate = cleaned if cleaned.startswith("+") else digits
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_possible_number(parsed):
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    return cached


def money_cents(cents: Any, currency: str | None) -> Money:
    """Integer cents plus a currency code column to Money."""
    code = text(currency).upper()
    return Money.from_cents(integer(cents), code)


def decimal(amount: Any) -> Decimal:
    """A decimal string such as "12.50" (or an int) to an exact Decimal; floats are refused."""
    if isinstance(amount, bool) or not isinstance(amount, str | int):
        raise MappingError("decimal", amount, "expected a decimal string")
    try:
        value = Decimal(amount)
    except InvalidOperation as exc:
        raise MappingError("decimal", amount, "not a decimal amount") from exc
    if not value.is_finite():
        raise MappingError("decimal", amount, "not a finite amount")
    return value


def money_decimal(amount: Any, currency: str | None) -> Money:
    """A decimal string such as "12.50" plus a currency code to Money."""
    return Money(decimal(amount), text(currency).upper())


def cyymmdd(value: Any) -> date:
    """The ERP's CYYMMDD date: century digit (0 = 19xx, 1 = 20xx), then YYMMDD."""
    number = integer(value)
    century, rest = divmod(number, 1_000_000)
    yy, mmdd = divmod(rest, 10_000)
    mm, dd = divmod(mmdd, 100)
    try:
        return date(1900 + century * 100 + yy, mm, dd)
    except ValueError as exc:
        raise MappingError("cyymmdd", value, "not a CYYMMDD date") from exc


def to_cyymmdd(value: date) -> int:
    """The inverse of `cyymmdd`, for filters sent to the ERP."""
    return (value.year // 100 - 19) * 1_000_000 + (value.year % 100) * 10_000 + value.month * 100 + value.day


def iso_date(value: Any) -> date:
    if not isinstance(value, str):
        raise MappingError("iso_date", value, "expected an ISO date")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise MappingError("iso_date", value, "expected an ISO date") from exc


def iso_datetime(value: Any) -> datetime:
    """ISO 8601 with an offset or Z; a naive time is taken as UTC, which is what the systems mean."""
    if not isinstance(value, str):
        raise MappingError("iso_datetime", value, "expected an ISO timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MappingError("iso_datetime", value, "expected an ISO timestamp") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def epoch_seconds(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MappingError("epoch_seconds", value, "expected seconds since the epoch")
    return datetime.fromtimestamp(value, tz=UTC)


def code(enum_type: type[E], table: Mapping[str, E]) -> Converter:
    """A legacy code ('O', 'N30', 'IT') to an enum member; an unknown code is a mapping error."""

    def convert(value: Any) -> E:
        key = value.strip() if isinstance(value, str) else value
        try:
            return table[key]
        except (KeyError, TypeError):
            raise MappingError(enum_type.__name__, value, "unknown code") from None

    return convert


def optional(converter: Converter) -> Converter:
    """Let a missing or blank value through as None."""

    def convert(*values: Any) -> Any:
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            return None
        return converter(*values)

    return convert


def nested(record_map: RecordMap[Any]) -> Converter:
    """A JSON object mapped by its own RecordMap."""

    def convert(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise MappingError(record_map.record.__name__, value, "expected an object")
        return record_map.convert(value)

    return convert


def many(record_map: RecordMap[Any]) -> Converter:
    """A JSON list of objects mapped by one RecordMap, as a tuple."""

    def convert(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise MappingError(record_map.record.__name__, value, "expected a list")
        return tuple(nested(record_map)(item) for item in value)

    return convert


# --- declarations -----------------------------------------------------------------------------------

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Field:
    """One clean field: where its raw value(s) come from and how to convert them.

    `raw` names a column or a dotted JSON path; a tuple passes several raw values to the converter
    (money = amount + currency). A missing raw key is an error unless `default` is given.
    """

    raw: str | tuple[str, ...]
    convert: Converter = identity
    default: Any = _MISSING

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.raw,) if isinstance(self.raw, str) else self.raw


def _lookup(raw: Mapping[str, Any], path: str, default: Any) -> Any:
    node: Any = raw
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif default is not _MISSING:
            return default
        else:
            raise MappingError(path, None, "missing in the upstream answer")
    return node


@dataclass(frozen=True, slots=True)
class RecordMap(Generic[R]):
    """How one raw row becomes one clean record (a frozen dataclass)."""

    record: type[R]
    fields: Mapping[str, Field]
    _fast: Callable[[Mapping[str, Any]], R] = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_fast", self._compile())

    def _compile(self) -> Callable[[Mapping[str, Any]], R]:
        """One function for the whole map (`record(a=c0(raw["A"]), b=c1(raw["B"], raw["C"]), ...)`): rows are
        converted by the thousand, and a loop over fields costs several times this. Any failure in it is
        left to the field-by-field conversion, which names the field and value."""
        names: dict[str, Any] = {"_record": self.record, "_lookup": _lookup}
        args = []
        for i, (name, f) in enumerate(self.fields.items()):
            names[f"_c{i}"] = f.convert
            reads = []
            for j, path in enumerate(f.paths):
                if "." in path or f.default is not _MISSING:
                    names[f"_d{i}_{j}"] = f.default
                    reads.append(f"_lookup(raw, {path!r}, _d{i}_{j})")
                else:
                    reads.append(f"raw[{path!r}]")
            if not name.isidentifier():
                raise ValueError(f"{name!r} is not a field name")
            args.append(f"{name}=_c{i}({', '.join(reads)})")
        code = f"def convert(raw):\n    return _record({', '.join(args)})\n"
        exec(compile(code, f"<RecordMap {self.record.__name__}>", "exec"), names)  # noqa: S102 - our own text
        fast: Callable[[Mapping[str, Any]], R] = names["convert"]
        return fast

    @property
    def raw_names(self) -> tuple[str, ...]:
        """Every raw column this map reads, in declaration order (for SELECT lists)."""
        seen: dict[str, None] = {}
        for f in self.fields.values():
            for path in f.paths:
                seen.setdefault(path.split(".")[0], None)
        return tuple(seen)

    def convert(self, raw: Mapping[str, Any]) -> R:
        try:
            return self._fast(raw)
        except Exception:  # noqa: S110 - converted again below, field by field, to say what failed
            pass
        return self._convert_fields(raw)

    def _convert_fields(self, raw: Mapping[str, Any]) -> R:
        values: dict[str, Any] = {}
        for name, f in self.fields.items():
            args = [_lookup(raw, path, f.default) for path in f.paths]
            try:
                values[name] = f.convert(*args)
            except MappingError as exc:
                raise MappingError(f"{self.record.__name__}.{name}", exc.value, str(exc)) from exc
            except (TypeError, ValueError, ArithmeticError) as exc:
                raise MappingError(f"{self.record.__name__}.{name}", args, str(exc)) from exc
        return self.record(**values)

    def apply(self, raw: Mapping[str, Any], *, source: str) -> R:
        """Convert, turning a mapping failure into the source's UPSTREAM_BAD_RESPONSE."""
        try:
            return self.convert(raw)
        except MappingError as exc:
            raise UpstreamBadResponse(source, str(exc)) from exc
