"""Fault knobs shared by the sample REST systems: latency, error rate, outage, garbage answers.

Set at start from the environment (`<SYS>_LATENCY_MS`, `<SYS>_ERROR_RATE`, `<SYS>_OUTAGE`) or at run
time with `POST /admin/faults`; `/admin/*` calls need the `X-Admin-Key` header. The module also holds
the few request/response helpers the three sample apps share, so each app file stays about its API.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import os
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

KNOBS = ("latency_ms", "error_rate", "outage", "garbage")
GARBAGE = b"<html><body>Service Temporarily Overloaded</body></html>{{"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass
class Faults:
    """The knobs of one sample system. Mutable on purpose: admin calls change them under running traffic."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    outage: bool = False
    garbage: bool = False
    requests: int = 0
    seed: int = 1234
    # Seeded, so a given error_rate fails the same requests on every run.
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.update(self.knobs())  # the same checks for constructor values as for admin calls

    @classmethod
    def from_env(cls, system: str, environ: Mapping[str, str] | None = None) -> Faults:
        """Knobs from `<SYSTEM>_LATENCY_MS`, `<SYSTEM>_ERROR_RATE` and `<SYSTEM>_OUTAGE`; ValueError names a bad one."""
        env = os.environ if environ is None else environ
        prefix = system.upper()

        def number(name: str, high: float) -> float:
            raw = env.get(f"{prefix}_{name}", "").strip()
            try:
                value = float(raw) if raw else 0.0
            except ValueError:
                value = math.nan
            if not 0 <= value <= high:  # NaN fails this too
                raise ValueError(f"{prefix}_{name} must be a number from 0 to {high:g}, not {raw!r}")
            return value

        outage = env.get(f"{prefix}_OUTAGE", "").strip().lower()
        if outage not in _TRUE + _FALSE:
            raise ValueError(f"{prefix}_OUTAGE must be true or false, not {outage!r}")
        return cls(latency_ms=number("LATENCY_MS", 3_600_000), error_rate=number("ERROR_RATE", 1),
                   outage=outage in _TRUE)

    def knobs(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "error_rate": self.error_rate, "outage": self.outage,
                "garbage": self.garbage}

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a partial change of the knobs, all or nothing; ValueError says what is wrong."""
        unknown = set(changes) - set(KNOBS)
        if unknown:
            raise ValueError(f"unknown knobs: {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            if name in ("outage", "garbage"):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
        if not 0 <= changes.get("error_rate", self.error_rate) <= 1:
            raise ValueError("error_rate must be between 0 and 1")
        for name, value in changes.items():
            setattr(self, name, float(value) if name in ("latency_ms", "error_rate") else value)

    def reset(self, knobs: Mapping[str, Any]) -> None:
        """Back to `knobs`, a zero request count and the seeded random stream's start."""
        self.update(knobs)
        self.requests = 0
        self.rng.seed(self.seed)


def _is_admin(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")


class FaultMiddleware:
    """Applies the knobs to every request outside /admin.

    Pure ASGI rather than BaseHTTPMiddleware: it sits in front of every benchmark request and must cost
    nothing when the knobs are off.
    """

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_admin(scope["path"]):
            await self.app(scope, receive, send)
            return
        faults = self.faults
        faults.requests += 1
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.outage:
            status, body = 503, orjson.dumps({"error": "service_unavailable"})
        elif faults.error_rate and faults.rng.random() < faults.error_rate:
            status, body = 500, orjson.dumps({"error": "internal_error"})
        elif faults.garbage:
            # Claims JSON but is not: what an overloaded proxy in front of a real API sends back.
            status, body = 200, GARBAGE
        else:
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def same_secret(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time comparison that also takes non-ASCII input (str compare_digest raises TypeError on it)."""
    a = given.encode() if isinstance(given, str) else given
    b = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def admin_routes(faults: Faults, admin_key: str, reset: Callable[[], Awaitable[None] | None]) -> list[Route]:
    """`POST /admin/faults`, `GET /admin/stats`, `POST /admin/reset`, guarded by the admin key.

    The knobs as they are now count as "initial": `/admin/reset` goes back to them and calls `reset` so
    the app can reload its data.
    """
    initial = faults.knobs()

    def allowed(request: Request) -> bool:
        # Raw header bytes: a key with non-ASCII bytes must be refused, not crash the comparison.
        given = next((v for k, v in request.scope["headers"] if k == b"x-admin-key"), b"")
        return same_secret(given, admin_key)

    def denied() -> Response:
        return json_response({"error": "admin key required"}, 401)

    async def set_faults(request: Request) -> Response:
        if not allowed(request):
            return denied()
        try:
            changes = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return json_response({"error": "body is not JSON"}, 400)
        if not isinstance(changes, dict):
            return json_response({"error": "send a JSON object of knobs"}, 400)
        try:
            faults.update(changes)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(faults.knobs())

    async def stats(request: Request) -> Response:
        if not allowed(request):
            return denied()
        return json_response({"requests": faults.requests})

    async def do_reset(request: Request) -> Response:
        if not allowed(request):
            return denied()
        faults.reset(initial)
        result = reset()
        if result is not None:
            await result
        return json_response({"reset": True})

    return [Route("/admin/faults", set_faults, methods=["POST"]), Route("/admin/stats", stats, methods=["GET"]),
            Route("/admin/reset", do_reset, methods=["POST"])]


async def _json_http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer JSON, like everything else the sample APIs say."""
    if not isinstance(exc, HTTPException):
        raise exc
    return json_response({"error": exc.detail}, exc.status_code, exc.headers)


def sample_app(routes: Sequence[BaseRoute], *, faults: Faults, admin_key: str,
               reset: Callable[[], Awaitable[None] | None]) -> Starlette:
    """A sample system: its API routes, `GET /healthz`, the admin routes, fault injection and JSON errors."""

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    return Starlette(
        routes=[*routes, Route("/healthz", healthz, methods=["GET"]), *admin_routes(faults, admin_key, reset)],
        middleware=[Middleware(FaultMiddleware, faults=faults)],
        exception_handlers={HTTPException: _json_http_error},
    )


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def csv_param(request: Request, name: str, limit: int) -> list[str] | Response:
    """A comma-separated query parameter without blanks and repeats, or a 400 when it holds more than `limit`.

    The limit counts what was sent, repeats included, as a real API checks the request before reading it.
    """
    values = [v.strip() for v in request.query_params.get(name, "").split(",") if v.strip()]
    if len(values) > limit:
        return json_response({"error": f"at most {limit} values in {name}"}, 400)
    return list(dict.fromkeys(values))


def int_param(request: Request, name: str, default: int, maximum: int, minimum: int = 1) -> int | Response:
    """A whole-number query parameter within bounds, or a 400 answer."""
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return default
    # isascii: str.isdigit() accepts "²", which int() refuses; the length keeps int() off huge inputs.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12) or not minimum <= int(raw) <= maximum:
        return json_response({"error": f"{name} must be a whole number from {minimum} to {maximum}"}, 400)
    return int(raw)


def text_param(request: Request, name: str) -> str | None:
    """An optional query parameter; empty counts as absent, as most HTTP clients send unset values."""
    value = request.query_params.get(name, "").strip()
    return value or None


def encode_cursor(key: tuple[str, ...]) -> str:
    """An opaque cursor holding the last sort key of a page.

    A key rather than an offset, so a page boundary survives edits made while a client pages through
    (a confirmed order leaving `status=SENT`, a new interaction on top).
    """
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def cursor_param(request: Request, size: int) -> tuple[str, ...] | Response | None:
    """The sort key in the `cursor` parameter (`size` parts), None for a first page, or a 400 answer."""
    raw = text_param(request, "cursor")
    if raw is None:
        return None
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeEncodeError):  # orjson.JSONDecodeError is a ValueError
        parts = None
    if not isinstance(parts, list) or len(parts) != size or not all(isinstance(p, str) for p in parts):
        return json_response({"error": "bad cursor"}, 400)
    return tuple(parts)
