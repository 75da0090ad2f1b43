"""REST transport: one pooled httpx client per source, auth strategies, errors mapped to SourceError."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from sources.base import Health, SourceCall, ms_since, record_call
from sources.errors import SourceError, SourceTimeout, SourceUnavailable, UpstreamBadResponse, UpstreamRejected
from sources.resilience import Resilience, ResiliencePolicy

Params = Mapping[str, str | int | float | None]


def items_under(body: Any, key: str, source: str) -> list[Any]:
    """The list under `key` of a JSON object, or UPSTREAM_BAD_RESPONSE."""
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise UpstreamBadResponse(source, f"expected a list under {key!r}")
    return items


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date is rare from APIs and treated as absent)."""
    raw = response.headers.get("Retry-After", "").strip()
    return float(raw) if raw.isdigit() else None


def _reason(response: httpx.Response) -> str:
    """The upstream's own explanation of a refused write, if it gave one in JSON."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        reason: str = body["error"][:200]
        return reason
    return f"HTTP {response.status_code}"


class OAuth2ClientCredentials(httpx.Auth):
    """OAuth2 client-credentials: fetch a token once, share it, refresh it before expiry or on a 401."""

    def __init__(self, source: str, token_url: str, client_id: str, client_secret: str,
                 scope: str | None = None) -> None:
        self.source = source
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        form = {"grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self.client_secret}
        if self.scope:
            form["scope"] = self.scope
        url = request.url.join(self.token_url)
        return httpx.Request("POST", url, data=form)

    def _accept(self, response: httpx.Response, started: float) -> None:
        ms = ms_since(started)
        if response.status_code != 200:
            record_call(SourceCall(self.source, "oauth.token", SourceUnavailable.code, ms))
            raise SourceUnavailable(self.source, f"token endpoint answered {response.status_code}")
        try:
            body = orjson.loads(response.content)
            self._token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 300))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            record_call(SourceCall(self.source, "oauth.token", UpstreamBadResponse.code, ms))
            raise UpstreamBadResponse(self.source, "token endpoint answer unreadable") from exc
        # Refresh a little early so a token never expires in flight.
        self._expires_at = time.monotonic() + max(lifetime - 30, lifetime / 2)
        record_call(SourceCall(self.source, "oauth.token", "ok", ms))

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        for attempt in range(2):
            token = self._token
            if token is None or time.monotonic() >= self._expires_at or attempt == 1:
                async with self._lock:
                    if self._token == token or self._token is None or time.monotonic() >= self._expires_at:
                        started = time.perf_counter()
                        token_response = yield self._token_request(request)
                        await token_response.aread()
                        self._accept(token_response, started)
                    token = self._token
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code != 401:
                return
            self._token = None

    def sync_auth_flow(self, request: httpx.Request) -> Any:
        raise RuntimeError("OAuth2ClientCredentials is async only")


class ApiKeyAuth(httpx.Auth):
    """A static key in a header, as many partner APIs want."""

    def __init__(self, header: str, key: str) -> None:
        self.header = header
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers[self.header] = self.key
        yield request


class RestTransport:
    """GET JSON from one upstream with a deadline per call; every outcome is recorded."""

    def __init__(self, name: str, base_url: str, *, timeout_s: float, auth: httpx.Auth | None = None,
                 max_connections: int = 100, transport: httpx.AsyncBaseTransport | None = None,
                 max_response_bytes: int = 16 * 1024 * 1024, resilience: Resilience | None = None) -> None:
        self.name = name
        self.resilience = resilience or Resilience(name, ResiliencePolicy(retries=0), timeout_s)
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self.client = httpx.AsyncClient(
            base_url=base_url, auth=auth, transport=transport, timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Accept": "application/json", "User-Agent": "gateway/0.1"},
        )

    async def get_json(self, operation: str, path: str, params: Params | None = None, *,
                       keys: int = 0, not_found_ok: bool = False) -> Any:
        """The decoded JSON body of a GET (retried as the source's policy says); None for a 404 when asked."""
        return await self.resilience.call(
            operation, lambda: self._get_once(operation, path, params, keys, not_found_ok), idempotent=True)

    async def _get_once(self, operation: str, path: str, params: Params | None, keys: int,
                        not_found_ok: bool) -> Any:
        async with self._call(operation, keys):
            response = await self.client.get(path, params={k: v for k, v in (params or {}).items() if v is not None})
            if response.status_code == 404 and not_found_ok:
                return None
            self._check_status(operation, response)
            if len(response.content) > self.max_response_bytes:
                raise UpstreamBadResponse(self.name, f"{operation}: answer larger than allowed")
            return self._decode(operation, response)

    async def send_json(self, operation: str, method: str, path: str, body: Any, *,
                        idempotency_key: str | None = None) -> Any:
        """A write (`body` None: none is sent, as for a DELETE). Never retried here: only the caller knows
        whether repeating it is safe."""
        return await self.resilience.call(
            operation, lambda: self._send_once(operation, method, path, body, idempotency_key), idempotent=False)

    async def _send_once(self, operation: str, method: str, path: str, body: Any,
                         idempotency_key: str | None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        async with self._call(operation, 1):
            response = await self.client.request(method, path, headers=headers,
                                                 content=None if body is None else orjson.dumps(body))
            if response.status_code in (400, 404, 409, 422):
                raise UpstreamRejected(self.name, response.status_code, _reason(response))
            self._check_status(operation, response)
            return self._decode(operation, response)

    @asynccontextmanager
    async def _call(self, operation: str, keys: int) -> AsyncIterator[None]:
        """One upstream call: bounded by the deadline, its failure mapped to a SourceError, and recorded."""
        started = time.perf_counter()
        status = "ok"
        try:
            async with asyncio.timeout(self.timeout_s):
                yield
        except TimeoutError as exc:
            status = SourceTimeout.code
            raise SourceTimeout(self.name, f"{operation} exceeded {self.timeout_s}s") from exc
        except httpx.TimeoutException as exc:
            status = SourceTimeout.code
            raise SourceTimeout(self.name, f"{operation}: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            status = SourceUnavailable.code
            raise SourceUnavailable(self.name, f"{operation}: {type(exc).__name__}: {exc}") from exc
        except SourceError as exc:
            status = exc.code
            raise
        finally:
            record_call(SourceCall(self.name, operation, status, ms_since(started), keys))

    def _decode(self, operation: str, response: httpx.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamBadResponse(self.name, f"{operation}: answer is not JSON") from exc

    def _check_status(self, operation: str, response: httpx.Response) -> None:
        code = response.status_code
        if 200 <= code < 300:
            return
        if code in (429, 503):
            raise SourceUnavailable(self.name, f"{operation}: upstream answered {code}",
                                    retry_after_s=_retry_after(response))
        if code in (401, 403):
            raise SourceUnavailable(self.name, f"{operation}: upstream refused the gateway's credentials")
        if code >= 500:
            raise SourceUnavailable(self.name, f"{operation}: upstream answered {code}")
        raise UpstreamBadResponse(self.name, f"{operation}: upstream answered {code}")

    async def health(self, path: str = "/") -> Health:
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self.client.get(path)
        except (TimeoutError, httpx.HTTPError) as exc:
            return Health(self.name, False, type(exc).__name__)
        return Health(self.name, response.status_code < 500, f"HTTP {response.status_code}")

    async def aclose(self) -> None:
        await self.client.aclose()
