"""Cursors name their list and position, refuse anything the gateway did not issue, and resume upstream pages."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import orjson
import pytest

from sources.cursors import CursorError, CursorKind, read_pages, upstream_kind
from sources.errors import UpstreamBadResponse

KEYED = CursorKind("test-keyed", (int, str))
SIGNED = upstream_kind("test-signed")


def test_a_cursor_decodes_to_its_parts() -> None:
    assert KEYED.decode(KEYED.encode(1241124, "A-1")) == (1241124, "A-1")
    assert SIGNED.decode(SIGNED.encode("upstream cursor", 3)) == ("upstream cursor", 3)
    assert KEYED.after(None) is None


def test_two_lists_cannot_share_a_name() -> None:
    with pytest.raises(ValueError, match="test-keyed"):
        CursorKind("test-keyed", (int,))


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "", "!!", "\x00", "A" * 5000, _b64([1, "test-keyed", 1]), _b64([1, "test-keyed", 1, 2]),
    _b64([1, "test-keyed", -1, "x"]), _b64([1, "test-keyed", 2**31, "x"]), _b64([1, "test-keyed", True, "x"]),
    _b64([1, "test-keyed", 1, "a\nb"]), _b64([2, "test-keyed", 1, "x"]), _b64([True, "test-keyed", 1, "x"]),
    _b64([1, "test-other", 1, "x"]), _b64({"a": 1}), _b64([1241124, "x"]), SIGNED.encode("c", 1),
    KEYED.encode(1, "x") + ".", KEYED.encode(1, "x")[:-2],
])
def test_anything_else_is_refused(cursor: str) -> None:
    with pytest.raises(CursorError, match="malformed cursor"):
        KEYED.decode(cursor)


def test_a_signed_cursor_cannot_be_edited_or_made_up() -> None:
    cursor = SIGNED.encode("c", 1)
    payload, mac = cursor.split(".")
    for forged in (_b64([1, "test-signed", "d", 1]) + "." + mac, _b64([1, "test-signed", "c", 1]),
                   payload, payload + "." + mac[:-1], payload + "." + mac[::-1], KEYED.encode(1, "c")):
        with pytest.raises(CursorError):
            SIGNED.decode(forged)


class Upstream:
    """A list paged by its own cursors (the last key of a page), with a cap on its page size."""

    def __init__(self, size: int, page_limit: int, short: bool = False) -> None:
        self.rows = list(range(size))
        self.page_limit = page_limit
        self.short = short  # hands out pages one row shorter than asked, with a next cursor
        self.calls = 0

    async def read(self, cursor: str | None, limit: int) -> tuple[list[Any], Any]:
        self.calls += 1
        assert 1 <= limit <= self.page_limit
        start = 0 if cursor is None else int(cursor) + 1
        taken = max(1, limit - 1) if self.short else limit
        page = self.rows[start: start + taken]
        return page, str(page[-1]) if start + taken < len(self.rows) else None


@pytest.mark.parametrize(("size", "page_limit", "short"), [(23, 5, False), (25, 5, False), (23, 5, True),
                                                           (0, 5, False), (1, 200, False)])
async def test_every_page_size_walks_every_row_once(size: int, page_limit: int, short: bool) -> None:
    for first in range(1, 13):
        upstream = Upstream(size, page_limit, short)
        rows: list[Any] = []
        after: tuple[str | int, ...] | None = None
        for _ in range(size + 2):
            page = await read_pages(upstream.read, first, after, page_limit=page_limit, source="test")
            rows += page.items
            assert len(page.items) == len(page.positions)
            if not page.has_next:
                break
            assert len(page.items) == first  # a next page is promised only after a full one
            after = page.positions[-1]
        assert rows == upstream.rows, (first, rows)


async def test_every_edge_resumes_right_after_itself() -> None:
    upstream = Upstream(23, 5)
    page = await read_pages(upstream.read, 12, None, page_limit=5, source="test")
    for index, position in enumerate(page.positions):
        rest = await read_pages(upstream.read, 23, position, page_limit=5, source="test")
        assert rest.items == upstream.rows[index + 1:] and not rest.has_next


@pytest.mark.parametrize("next_cursor", [7, "x" * 5000, "same"])
async def test_an_upstream_whose_next_cursor_is_unusable_is_a_bad_response(next_cursor: Any) -> None:
    async def read(cursor: str | None, limit: int) -> tuple[list[Any], Any]:
        return [1], next_cursor if cursor is None else "same"  # "same": it never moves on

    with pytest.raises(UpstreamBadResponse):
        await read_pages(read, 5, None, page_limit=5, source="test")


def test_positions_stay_within_the_cursor_limits() -> None:
    for page, seen in itertools.product(("", "c" * 2048), (1, 200)):
        assert SIGNED.decode(SIGNED.encode(page, seen)) == (page, seen)
