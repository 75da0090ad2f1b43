"""The upstream floor of a request: the time at least one upstream call was in flight."""

from __future__ import annotations

import pytest

from sources.base import CallLog, SourceCall


def call(start_s: float, ms: float) -> SourceCall:
    return SourceCall("s", "op", "ok", ms, ended=start_s + ms / 1000)


@pytest.mark.parametrize(("calls", "floor"), [
    ([], 0.0),
    ([call(0, 10)], 10.0),
    ([call(0, 10), call(0.005, 10)], 15.0),  # overlapping: parallel branches take the longer span
    ([call(0, 10), call(0.020, 5)], 15.0),  # one after the other: dependent levels add up
    ([call(0, 30), call(0.005, 5), call(0.010, 5)], 30.0),  # nested inside another
])
def test_upstream_floor(calls: list[SourceCall], floor: float) -> None:
    assert CallLog(calls).upstream_ms() == pytest.approx(floor)
