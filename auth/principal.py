"""Who is asking: the authenticated principal of one request."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PrincipalKind(enum.Enum):
    USER = "user"  # staff, by JWT
    SERVICE = "service"  # internal systems, by JWT
    PARTNER = "partner"  # suppliers and carriers, by API token
    ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    kind: PrincipalKind
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    partner_id: str | None = None
    token_id: str | None = None

    @property
    def internal(self) -> bool:
        """Staff and internal services: may explore the schema and run any operation."""
        return self.kind in (PrincipalKind.USER, PrincipalKind.SERVICE)

    @property
    def partner(self) -> bool:
        return self.kind is PrincipalKind.PARTNER

    def has(self, *scopes: str) -> bool:
        return self.scopes.issuperset(scopes)


ANONYMOUS = Principal(subject="anonymous", kind=PrincipalKind.ANONYMOUS)


class AuthError(Exception):
    """Credentials that do not authenticate. Every cause gets the same public answer."""

    public_message = "invalid or expired credentials"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # for the log only
