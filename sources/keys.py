"""What the keys of the sources' records look like, one format per kind of key.

A client's text becomes a key here, before any upstream call: a key no record can have (empty, too long,
unicode digits such as "³", control characters, a comma that would split a batch read) is refused at the
edge instead of reaching SQL, `int()` or a partner's query string. The formats are ASCII on purpose:
`str.isdigit()` and regex `\\d` accept other scripts' digits, which `int()` or a CHAR column then trip on.
Lengths are generous upper bounds, not the columns' widths: a well-formed key of no record reads as absent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")

#: The largest order number: ORDHDR.OHORNO is a 32-bit integer on every supported database.
MAX_ORDER_NUMBER = 2**31 - 1


class MalformedKey(ValueError):
    """Text that cannot be a key of its kind; its message says what the key must be."""


def _order_number(text: str) -> int:
    number = int(text)
    if number > MAX_ORDER_NUMBER:
        raise MalformedKey(ORDER_NUMBER.description)
    return number


@dataclass(frozen=True, slots=True)
class KeyFormat(Generic[K]):
    """One kind of key: the text it may be (surrounding blanks aside) and the key its source reads by."""

    #: Completes "`argument` must be ...".
    description: str
    pattern: re.Pattern[str]
    convert: Callable[[str], K]

    def parse(self, value: str) -> K:
        """The key `value` names; MalformedKey if it cannot name one."""
        text = value.strip()
        if not self.pattern.fullmatch(text):
            raise MalformedKey(self.description)
        return self.convert(text)


def _format(description: str, pattern: str) -> KeyFormat[str]:
    return KeyFormat(description, re.compile(pattern, re.ASCII), str)


CUSTOMER_NUMBER = _format("an ERP customer number (1 to 20 ASCII letters or digits)", r"[A-Za-z0-9]{1,20}")
ORDER_NUMBER: KeyFormat[int] = KeyFormat(
    f"an ERP order number (ASCII digits, at most {MAX_ORDER_NUMBER})", re.compile(r"[0-9]{1,10}", re.ASCII),
    _order_number)
SKU = _format("a SKU (1 to 32 ASCII letters, digits or . _ / -, starting with a letter or digit)",
              r"[A-Za-z0-9][A-Za-z0-9._/-]{0,31}")
VENDOR_CODE = _format("a vendor code (1 to 20 ASCII letters or digits)", r"[A-Za-z0-9]{1,20}")
WAREHOUSE_CODE = _format("a warehouse code (1 to 20 ASCII letters or digits)", r"[A-Za-z0-9]{1,20}")
CRM_ID = _format("a CRM id (1 to 64 ASCII letters, digits or . _ -, starting with a letter or digit)",
                 r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TRACKING_NUMBER = _format("a tracking number (1 to 40 ASCII letters, digits or -, starting with a letter or digit)",
                          r"[A-Za-z0-9][A-Za-z0-9-]{0,39}")
PO_NUMBER = _format("a purchase order number (1 to 40 ASCII letters, digits or . _ / -, starting with a letter "
                    "or digit)", r"[A-Za-z0-9][A-Za-z0-9._/-]{0,39}")
