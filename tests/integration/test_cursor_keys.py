"""Signed cursors are good on every instance that shares the gateway's database, and after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.db import upgrade
from gateway.keys import shared_key
from sources import cursors
from sources.cursors import CursorError, upstream_kind
from sources.sql import make_engine

KIND = upstream_kind("test-shared-key")


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module's keys as a newly started process has them: one drawn at random."""
    monkeypatch.setattr(cursors, "_keys", [b"k" * 32])


async def test_instances_sharing_a_database_share_the_key(tmp_path: Path, fresh_process: None) -> None:
    shared, other = (make_engine(f"sqlite+aiosqlite:///{tmp_path / name}", pool_size=1) for name in ("a.db", "b.db"))
    try:
        for engine in (shared, other):
            await upgrade(engine)
        first = await shared_key(shared, "cursor")
        assert await shared_key(shared, "cursor") == first  # a second instance (or a restart) reads it
        assert await shared_key(other, "cursor") != first  # another deployment makes its own
        cursors.use_key(first)
        cursor = KIND.encode("page-2", 3)
        cursors._keys[:] = [b"r" * 32]  # another worker, started with a random key of its own ...
        with pytest.raises(CursorError):
            KIND.decode(cursor)
        cursors.use_key(await shared_key(shared, "cursor"))  # ... until it takes the database's key
        assert KIND.decode(cursor) == ("page-2", 3)
    finally:
        for engine in (shared, other):
            await engine.dispose()


def test_a_rotated_key_still_verifies_until_restart(fresh_process: None) -> None:
    cursors.use_key(b"1" * 32)
    old = KIND.encode("p", 1)
    cursors.use_key(b"2" * 32)
    new = KIND.encode("p", 1)
    assert old != new and KIND.decode(old) == KIND.decode(new) == ("p", 1)
    for n in range(3, 3 + cursors.MAX_KEYS):
        cursors.use_key(str(n).encode() * 32)
    with pytest.raises(CursorError):  # only the last MAX_KEYS keys are kept
        KIND.decode(old)
    with pytest.raises(ValueError, match="16 bytes"):
        cursors.use_key(b"short")
