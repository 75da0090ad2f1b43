"""Fault knobs shared by the sample REST systems: latency, error rate, outage, garbage answers.

Set at start from the environment (`<SYS>_LATENCY_MS`, `<SYS>_ERROR_RATE`, `<SYS>_OUTAGE`) or at run
time with `POST /admin/faults`; `/admin/*` calls need the `X-Admin-Key` header.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    outage: bool = False
    garbage: bool = False
    requests: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(1234), repr=False)

    @classmethod
    def from_env(cls, system: str) -> Faults:
        prefix = system.upper()
        return cls(
            latency_ms=float(os.environ.get(f"{prefix}_LATENCY_MS", "0")),
            error_rate=float(os.environ.get(f"{prefix}_ERROR_RATE", "0")),
            outage=os.environ.get(f"{prefix}_OUTAGE", "").lower() in ("1", "true", "yes"),
        )

    def knobs(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "error_rate": self.error_rate, "outage": self.outage,
                "garbage": self.garbage}

    def update(self, changes: dict[str, Any]) -> None:
        allowed = {f.name: f.type for f in fields(self) if f.name in ("latency_ms", "error_rate", "outage", "garbage")}
        unknown = set(changes) - set(allowed)
        if unknown:
            raise ValueError(f"unknown knobs: {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            if name in ("outage", "garbage"):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
            setattr(self, name, value)
        if self.error_rate > 1:
            raise ValueError("error_rate must be between 0 and 1")


def _json(status: int, body: Any) -> tuple[int, bytes]:
    return status, orjson.dumps(body)


class FaultMiddleware:
    """Applies the knobs to every request outside /admin (pure ASGI, so it costs nothing when idle)."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/admin"):
            await self.app(scope, receive, send)
            return
        faults = self.faults
        faults.requests += 1
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        answer: tuple[int, bytes] | None = None
        if faults.outage:
            answer = _json(503, {"error": "service unavailable"})
        elif faults.error_rate and faults.rng.random() < faults.error_rate:
            answer = _json(500, {"error": "internal error"})
        elif faults.garbage:
            answer = (200, b"<html>Service Temporarily Overloaded</html>{{")
        if answer is None:
            await self.app(scope, receive, send)
            return
        status, body = answer
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def admin_routes(faults: Faults, admin_key: str, reset: Callable[[], Awaitable[None] | None]) -> list[Route]:
    """`/admin/faults`, `/admin/stats`, `/admin/reset`, guarded by the admin key."""
    initial = replace(faults)

    def allowed(request: Request) -> bool:
        return hmac.compare_digest(request.headers.get("x-admin-key", ""), admin_key)

    def denied() -> Response:
        return Response(orjson.dumps({"error": "admin key required"}), 401, media_type="application/json")

    async def set_faults(request: Request) -> Response:
        if not allowed(request):
            return denied()
        try:
            changes = orjson.loads(await request.body())
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            faults.update(changes)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return Response(orjson.dumps({"error": str(exc)}), 400, media_type="application/json")
        return Response(orjson.dumps(faults.knobs()), media_type="application/json")

    async def stats(request: Request) -> Response:
        if not allowed(request):
            return denied()
        return Response(orjson.dumps({"requests": faults.requests, **faults.knobs()}), media_type="application/json")

    async def do_reset(request: Request) -> Response:
        if not allowed(request):
            return denied()
        faults.update(initial.knobs())
        faults.requests = 0
        result = reset()
        if result is not None:
            await result
        return Response(orjson.dumps({"reset": True}), media_type="application/json")

    return [Route("/admin/faults", set_faults, methods=["POST"]), Route("/admin/stats", stats, methods=["GET"]),
            Route("/admin/reset", do_reset, methods=["POST"])]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def csv_param(request: Request, name: str, limit: int) -> list[str] | Response:
    """A comma-separated query parameter, or a 400 answer when it holds more than `limit` values."""
    values = [v.strip() for v in request.query_params.get(name, "").split(",") if v.strip()]
    if len(values) > limit:
        return json_response({"error": f"at most {limit} values in {name}"}, 400)
    return values


def int_param(request: Request, name: str, default: int, maximum: int) -> int | Response:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        return json_response({"error": f"{name} must be a whole number from 1 to {maximum}"}, 400)
    return int(raw)
