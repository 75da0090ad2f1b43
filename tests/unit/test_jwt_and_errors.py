"""RS256 JWTs with keys from a JWKS URL, and error masking."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from graphql import GraphQLError

from auth.jwt import JwtAuthenticator, JwtConfig
from auth.principal import AuthError, PrincipalKind
from auth.scopes import DEFAULT_ROLES
from gateway.errors import classify
from sources.errors import SourceUnavailable

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()


def _claims(**extra: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "carol", "iss": "idp", "aud": "gateway", "exp": now + 60, "roles": ["ops"], **extra}


async def test_rs256_from_jwks(jwks_url: str) -> None:
    auth = JwtAuthenticator(JwtConfig(issuer="idp", audience="gateway", jwks_url=jwks_url), DEFAULT_ROLES)
    token = jwt.encode(_claims(), KEY, algorithm="RS256", headers={"kid": "k1"})
    principal = await auth.authenticate(token)
    assert principal.kind is PrincipalKind.USER and principal.scopes == DEFAULT_ROLES["ops"]


async def test_algorithm_confusion_is_refused(jwks_url: str) -> None:
    auth = JwtAuthenticator(JwtConfig(issuer="idp", audience="gateway", jwks_url=jwks_url), DEFAULT_ROLES)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong_signer = jwt.encode(_claims(), other_key, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(AuthError):
        await auth.authenticate(wrong_signer)
    # An HS256 token naming the RSA key (algorithm confusion) is refused: only RS256 is accepted.
    hs = jwt.encode(_claims(), "x" * 40, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(AuthError):
        await auth.authenticate(hs)


def test_unexpected_errors_are_masked() -> None:
    error = GraphQLError("boom", original_error=RuntimeError("SELECT secret FROM vault at http://10.0.0.5"),
                         path=["customer"])
    masked = classify(error, "req-1")
    assert masked.message == "Internal error"
    assert masked.extensions == {"code": "INTERNAL_ERROR", "requestId": "req-1"}
    assert masked.path == ["customer"]


def test_source_errors_name_the_source_only() -> None:
    original = SourceUnavailable("erp", "orders failed: (asyncpg) connection to 10.0.0.5:5432 refused, SQL: SELECT ...")
    masked = classify(GraphQLError("x", original_error=original), "req-2")
    assert masked.message == "Source 'erp' is unavailable"
    assert "SELECT" not in masked.message and "10.0.0.5" not in masked.message
    assert masked.extensions == {"code": "SOURCE_UNAVAILABLE", "source": "erp"}


async def test_a_remembered_token_is_refused_once_it_expires() -> None:
    """Verified tokens are remembered (no signature check per request), but never past their expiry."""
    secret = "s" * 40
    now = [1_000.0]
    auth = JwtAuthenticator(JwtConfig(issuer="idp", audience="gateway", secret=secret, leeway_s=0), DEFAULT_ROLES,
                            clock=lambda: now[0])
    real = int(time.time())
    token = jwt.encode({**_claims(), "exp": real + 2}, secret, algorithm="HS256")
    now[0] = real
    assert (await auth.authenticate(token)).subject == "carol"
    assert token in auth._verified  # remembered
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthError):
        await auth.authenticate(forged)  # a different string is checked in full
    now[0] = real + 3  # past the expiry: no longer remembered, and checked (and refused) in full
    await asyncio.sleep(max(0.0, real + 3 - time.time()))
    with pytest.raises(AuthError):
        await auth.authenticate(token)


def _raise_with_a_secret_local() -> None:
    password = "hunter2-local-secret"  # noqa: F841 - a local variable the log must never show
    raise RuntimeError("boom at the bottom")


def test_unexpected_errors_are_logged_once_compactly_without_locals() -> None:
    from structlog.testing import capture_logs

    try:
        _raise_with_a_secret_local()
    except RuntimeError as exc:
        original = exc
    with capture_logs() as logs:
        masked = classify(GraphQLError("boom", original_error=original, path=["order"]), "req-3")
    assert masked.extensions == {"code": "INTERNAL_ERROR", "requestId": "req-3"}
    assert len(logs) == 1 and "exc_info" not in logs[0]
    event = logs[0]
    assert (event["event"], event["error_type"], event["error"]) == ("unexpected_error", "RuntimeError",
                                                                     "boom at the bottom")
    assert "_raise_with_a_secret_local" in event["traceback"] and len(event["traceback"]) < 5_000
    assert "hunter2-local-secret" not in repr(event)


def test_a_variable_that_does_not_fit_its_type_is_bad_input() -> None:
    from structlog.testing import capture_logs

    coercion = GraphQLError("Expected value of non-null type 'ID!' not to be None.")
    error = GraphQLError("Variable '$id' has invalid value: Expected value of non-null type 'ID!' not to be None.",
                         original_error=coercion)
    with capture_logs() as logs:
        masked = classify(error, "req-4")
    assert masked.extensions == {"code": "BAD_USER_INPUT"} and masked.message.startswith("Variable '$id'")
    assert logs == []
