"""Internal users by JWT: HS256 with a shared secret (demo), RS256 with keys from a JWKS URL (production)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from auth.principal import AuthError, Principal, PrincipalKind
from auth.scopes import scopes_for_roles


@dataclass(frozen=True, slots=True)
class JwtConfig:
    issuer: str
    audience: str
    secret: str | None = None  # HS256
    jwks_url: str | None = None  # RS256
    leeway_s: float = 30
    roles_claim: str = "roles"


class JwtAuthenticator:
    """Checks signature, algorithm, expiry, issuer and audience, then maps roles to scopes."""

    #: A verified token is remembered this long at most (and never past its expiry): clients send the same
    #: token with every request, and checking its signature and claims is most of what a cached answer costs.
    REMEMBER_S = 60.0
    REMEMBER_MAX = 10_000

    def __init__(self, config: JwtConfig, role_map: Mapping[str, frozenset[str]],
                 clock: Callable[[], float] = time.time) -> None:
        if (config.secret is None) == (config.jwks_url is None):
            raise ValueError("configure exactly one of a JWT secret (HS256) and a JWKS URL (RS256)")
        self.config = config
        self.role_map = role_map
        self.clock = clock
        self._verified: dict[str, tuple[dict[str, Any], float]] = {}
        self._jwks = jwt.PyJWKClient(config.jwks_url, cache_keys=True, lifespan=300) if config.jwks_url else None

    async def authenticate(self, token: str) -> Principal:
        now = self.clock()
        remembered = self._verified.get(token)
        if remembered is not None and remembered[1] > now:
            claims = remembered[0]
        else:
            if self._jwks is not None:
                # PyJWKClient fetches keys with blocking I/O (cached afterwards): keep it off the event loop.
                claims = await asyncio.to_thread(self._decode_rs256, token)
            else:
                claims = self._decode(token, self.config.secret or "", ["HS256"])
            if len(self._verified) >= self.REMEMBER_MAX:
                self._verified.clear()
            if "nbf" not in claims:  # a token not valid yet is checked again each time
                self._verified[token] = claims, min(float(claims["exp"]), now + self.REMEMBER_S)
        roles = claims.get(self.config.roles_claim, [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise AuthError("roles claim is not a list of strings")
        kind = PrincipalKind.SERVICE if claims.get("typ") == "service" else PrincipalKind.USER
        return Principal(subject=str(claims["sub"]), kind=kind, roles=frozenset(roles),
                         scopes=scopes_for_roles(roles, self.role_map), token_id=claims.get("jti"))

    def _decode_rs256(self, token: str) -> dict[str, Any]:
        assert self._jwks is not None
        try:
            key = self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWTError as exc:
            raise AuthError(f"no signing key: {exc}") from None
        return self._decode(token, key, ["RS256"])

    def _decode(self, token: str, key: Any, algorithms: list[str]) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=algorithms, audience=self.config.audience, issuer=self.config.issuer,
                leeway=self.config.leeway_s, options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            raise AuthError(f"JWT rejected: {type(exc).__name__}: {exc}") from None
        return claims


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2
