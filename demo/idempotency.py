"""Idempotency keys for the sample systems' writes, as the IETF httpapi Idempotency-Key draft describes.

A write sent again with the same `Idempotency-Key` gets the first answer back, and nothing is applied
twice; the same key with another request (method, path or body) is `422`; concurrent retries of one key
wait for the first to finish. Keys are kept for the last `size` writes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from demo.faults import json_response


@dataclass(frozen=True, slots=True)
class _Answer:
    fingerprint: str
    status: int
    body: bytes
    media_type: str | None


class Replays:
    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._answers: OrderedDict[str, _Answer] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def clear(self) -> None:
        self._answers.clear()

    async def once(self, request: Request, write: Callable[[], Awaitable[Response]]) -> Response:
        """`write`'s answer, or the first answer of this request's Idempotency-Key."""
        key = request.headers.get("idempotency-key")
        if key is None:
            return await write()
        body = await request.body()
        fingerprint = hashlib.sha256(b"\0".join((request.method.encode(), request.url.path.encode(), body))
                                     ).hexdigest()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            found = self._answers.get(key)
            if found is not None:
                if found.fingerprint != fingerprint:
                    return json_response({"error": "this Idempotency-Key was used for another request"}, 422)
                return Response(found.body, found.status, media_type=found.media_type,
                                headers={"Idempotent-Replayed": "true"})
            response = await write()
            if response.status_code < 500:  # a failure the client may retry is not remembered
                self._answers[key] = _Answer(fingerprint, response.status_code, bytes(response.body),
                                             response.media_type)
                while len(self._answers) > self.size:
                    self._answers.popitem(last=False)
        if not lock.locked():
            self._locks.pop(key, None)
        return response
