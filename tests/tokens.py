"""Credentials for tests: JWTs signed like an identity provider would, for any roles."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt


def make_jwt(secret: str, *, roles: list[str], subject: str = "alice@example.com", issuer: str = "gateway",
             audience: str = "gateway", expires_in: int = 600, **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": subject, "iss": issuer, "aud": audience, "iat": now, "exp": now + expires_in,
               "jti": uuid.uuid4().hex, "roles": roles, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")
