"""Cursors: the one encoding of every list's `after`, checked before anything is read for it.

A cursor names the list that issued it (its kind), a format version, and the position after one edge:
either sort-key values the gateway reads itself (an order's date and number), or an upstream's own page
cursor with how many items of that page were already handed out. An upstream's page cursor is opaque:
the gateway cannot tell a real one from a made-up one, and a made-up one would cost an upstream call
and come back as that upstream's error (counted against it by its circuit breaker). So cursors that
carry one are signed, HMAC-SHA256. The key is set at start-up (`use_key`): `server.cursor_secret`, or
else a key made once and kept in the gateway's own database, so every instance and worker sharing that
database takes every other's cursors, also after a restart. Until a key is set, a key drawn at process
start signs. Keys set earlier in the process still verify (a rotated secret keeps its cursors good
until the process restarts). An edited or made-up cursor is BAD_USER_INPUT like any cursor this
gateway did not issue. Sort-key cursors are not signed (any well-typed key is a valid position),
so they survive restarts and work across replicas.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from sources.errors import UpstreamBadResponse

VERSION = 1
MAX_LENGTH = 4096  # longer is refused before it is decoded
MAX_TEXT = 256  # characters of a text part of an unsigned cursor
MAX_NUMBER = 2**31 - 1  # every number part is a 32-bit key or a count; larger ones fail in some databases
MAX_UPSTREAM_CURSOR = 2048  # an upstream's page cursor, as carried inside ours
MAC_BYTES = 16

MAX_KEYS = 4
_keys: list[bytes] = [secrets.token_bytes(32)]  # the first signs, all verify: see the module docstring
_NAMES: set[str] = set()

Part = str | int


class CursorError(ValueError):
    """An `after` that is not a cursor this gateway issued for this list (BAD_USER_INPUT)."""

    def __init__(self) -> None:
        super().__init__("malformed cursor")  # gateway.errors knows this message


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:  # a non-ASCII character is a ValueError
        raise CursorError from exc


def use_key(key: bytes) -> None:
    """Sign with `key` from now on; the keys used before still verify (at most MAX_KEYS are kept)."""
    if len(key) < 16:
        raise ValueError("a cursor key has at least 16 bytes")
    if key in _keys:
        _keys.remove(key)
    _keys.insert(0, key)
    del _keys[MAX_KEYS:]


def _mac(payload: bytes, key: bytes | None = None) -> bytes:
    return hmac.new(key or _keys[0], payload, hashlib.sha256).digest()[:MAC_BYTES]


def _verified(payload: bytes, mac: bytes) -> bool:
    return any(hmac.compare_digest(mac, _mac(payload, key)) for key in tuple(_keys))


@dataclass(frozen=True, slots=True)
class CursorKind:
    """The cursors of one list: a name unique in the gateway, the types of their parts, whether signed."""

    name: str
    parts: tuple[type[str] | type[int], ...]
    signed: bool = False

    def __post_init__(self) -> None:
        if self.name in _NAMES:
            raise ValueError(f"two kinds of cursor are named {self.name!r}")
        _NAMES.add(self.name)

    def _fits(self, parts: tuple[Any, ...]) -> bool:
        if len(parts) != len(self.parts):
            return False
        for part, kind in zip(parts, self.parts, strict=True):
            if type(part) is not kind:  # `type`, not isinstance: True is no number
                return False
            if isinstance(part, int) and not 0 <= part <= MAX_NUMBER:
                return False
            if isinstance(part, str) and not self.signed and (len(part) > MAX_TEXT or not part.isprintable()):
                return False
        return True

    def encode(self, *parts: Part) -> str:
        """The cursor of a position in this list."""
        if not self._fits(parts):
            raise TypeError(f"a {self.name} cursor takes {self.parts}, not {parts!r}")
        payload = orjson.dumps([VERSION, self.name, *parts])
        return f"{_b64(payload)}.{_b64(_mac(payload))}" if self.signed else _b64(payload)

    def decode(self, cursor: str) -> tuple[Part, ...]:
        """The parts of a cursor this list issued; CursorError for anything else."""
        if not cursor or len(cursor) > MAX_LENGTH:
            raise CursorError
        body, dot, mac = cursor.partition(".")
        if bool(dot) != self.signed:
            raise CursorError
        payload = _unb64(body)
        if self.signed and not _verified(payload, _unb64(mac)):
            raise CursorError
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise CursorError from exc
        if (not isinstance(value, list) or len(value) < 2 or type(value[0]) is not int or value[0] != VERSION
                or value[1] != self.name or not self._fits(tuple(value[2:]))):
            raise CursorError
        return tuple(value[2:])

    def after(self, cursor: str | None) -> tuple[Part, ...] | None:
        """`decode`, with None (the list's start) passed through."""
        return None if cursor is None else self.decode(cursor)


# --- lists an upstream pages by its own cursors ------------------------------------------------------

#: Reads one upstream page: (its cursor, None for the first; how many items) -> (items, next page's cursor).
PageReader = Callable[[str | None, int], Awaitable[tuple[list[Any], Any]]]


@dataclass(frozen=True, slots=True)
class UpstreamSlice:
    """Raw items read through an upstream's pages, each with its position: (page cursor or "", items seen)."""

    items: list[Any]
    positions: list[tuple[str, int]]
    has_next: bool


def upstream_kind(name: str) -> CursorKind:
    """The cursors of a list an upstream pages: its page cursor ("" for the first) and items seen of it."""
    return CursorKind(name, (str, int), signed=True)


async def read_pages(read: PageReader, first: int, after: tuple[Part, ...] | None, *, page_limit: int,
                     source: str) -> UpstreamSlice:
    """`first` items after a position, crossing as many upstream pages as that takes.

    The upstream only hands out a cursor per page (of at most `page_limit` items); a position inside a
    page is that page's cursor and how many of its items were seen, so every edge resumes exactly after
    itself. One item more than asked is read, to know whether there is a next page without promising one.
    """
    page, skip = ("", 0) if after is None else (str(after[0]), int(after[1]))
    items: list[Any] = []
    positions: list[tuple[str, int]] = []
    pages_read: set[str] = set()
    while True:
        pages_read.add(page)
        raw, next_page = await read(page or None, min(page_limit, first + skip + 1))
        if next_page is not None and (not isinstance(next_page, str) or len(next_page) > MAX_UPSTREAM_CURSOR):
            raise UpstreamBadResponse(source, "a next-page cursor that is not a short text")
        for seen, item in enumerate(raw[skip:], start=skip + 1):
            items.append(item)
            positions.append((page, seen))
        if len(items) > first or not next_page:
            return UpstreamSlice(items[:first], positions[:first], len(items) > first)
        if next_page in pages_read or len(pages_read) > first + 1:  # each page but the first gives an item
            raise UpstreamBadResponse(source, "its next-page cursors do not move on")
        page, skip = next_page, 0
