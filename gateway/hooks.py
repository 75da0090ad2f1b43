"""Change notices from source systems: `POST /hooks/{source}`, signed with HMAC-SHA256.

A notice names changed entities: `{"entity": "customer", "ids": ["..."]}` or several under
`{"changes": [...]}`. The signature is `X-Webhook-Signature: sha256=<hex>` over
`<X-Webhook-Timestamp>.<body>` with the source's secret (`cache.webhook_secrets`); notices older or
newer than `cache.webhook_max_skew_s` are refused, so a captured notice cannot be replayed later.
A bad signature is a 401 and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.settings import Settings
from resolvers.context import Services

log = structlog.get_logger("gateway.hooks")
MAX_NOTICE_BYTES = 64 * 1024


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _problem(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _changes(payload: Any) -> list[tuple[str, list[Any]]] | None:
    items = payload.get("changes", [payload]) if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        return None
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("entity"), str):
            return None
        ids = item.get("ids", [])
        if not isinstance(ids, list):
            return None
        out.append((item["entity"], ids))
    return out


async def receive(request: Request, services: Services, settings: Settings) -> Response:
    source_name = request.path_params["source"]
    entity_operations: Mapping[str, Mapping[str, tuple[str, ...]]] = {
        "erp": services.erp.ENTITY_OPERATIONS, "crm": services.crm.ENTITY_OPERATIONS,
        "supplier": services.supplier.ENTITY_OPERATIONS, "logistics": services.logistics.ENTITY_OPERATIONS}
    source = entity_operations.get(source_name)
    secret = settings.cache.webhook_secrets.get(source_name)
    if source is None or secret is None:
        return _problem(404, f"no change notices are taken for {source_name!r}")
    body = await request.body()
    if len(body) > MAX_NOTICE_BYTES:
        return _problem(413, "notice too large")
    timestamp = request.headers.get("x-webhook-timestamp", "")
    given = request.headers.get("x-webhook-signature", "")
    expected = sign(secret.get_secret_value(), timestamp, body)
    fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= settings.cache.webhook_max_skew_s
    if not hmac.compare_digest(given.encode(), expected.encode()) or not fresh:
        log.warning("webhook_refused", source=source_name, fresh=fresh)
        return _problem(401, "bad or stale signature")
    try:
        changes = _changes(orjson.loads(body))
    except orjson.JSONDecodeError:
        changes = None
    if changes is None:
        return _problem(400, 'send {"entity": ..., "ids": [...]} or {"changes": [...]}')
    unknown = sorted({entity for entity, _ in changes if entity not in source})
    if unknown:
        return _problem(422, f"unknown entities for {source_name}: {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(source))}")
    operations = sorted({op for entity, _ in changes for op in source[entity]})
    # A generation bump per operation: O(1), exact for every argument combination, and seen at once by
    # every instance sharing the cache backend.
    for operation in operations:
        await services.cache.invalidate(source_name, operation)
    if source_name == "crm" and any(entity == "customer" for entity, _ in changes):
        services.crosswalk.refresh_soon()
    log.info("webhook_applied", source=source_name, operations=operations)
    return JSONResponse({"invalidated": [f"{source_name}.{op}" for op in operations]}, status_code=202)
