"""From an Authorization header to a Principal: JWTs for internal users, API tokens for partners."""

from __future__ import annotations

from auth.jwt import JwtAuthenticator, looks_like_jwt
from auth.principal import ANONYMOUS, AuthError, Principal
from auth.tokens import TOKEN_PREFIX, TokenAuthenticator


class Authenticator:
    def __init__(self, tokens: TokenAuthenticator, jwt: JwtAuthenticator | None) -> None:
        self.tokens = tokens
        self.jwt = jwt

    async def authenticate(self, authorization: str | None) -> Principal:
        """ANONYMOUS without credentials; AuthError for credentials that do not hold."""
        if authorization is None or not authorization.strip():
            return ANONYMOUS
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthError("not a bearer credential")
        if credential.startswith(TOKEN_PREFIX):
            return await self.tokens.authenticate(credential)
        if self.jwt is not None and looks_like_jwt(credential):
            return await self.jwt.authenticate(credential)
        raise AuthError("unrecognised credential")
