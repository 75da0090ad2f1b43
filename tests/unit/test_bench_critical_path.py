"""The benchmark's overhead subtracts the critical path of a request's upstream calls, not their union."""

from __future__ import annotations

from bench.run import critical_path_ms


def _call(start: float, end: float) -> dict[str, float]:
    return {"startMs": start, "ms": end - start}


def test_a_chain_counts_its_calls_and_not_the_gaps_between_them() -> None:
    chain = [_call(1, 6), _call(7, 12), _call(13.5, 19)]
    assert critical_path_ms(chain) == 5 + 5 + 5.5


def test_a_call_beside_the_chain_hides_none_of_its_gaps() -> None:
    chain = [_call(1, 6), _call(7, 12), _call(13.5, 19)]
    beside = _call(2, 18)  # in flight over both gaps, but ends before the chain does
    assert critical_path_ms([*chain, beside]) == critical_path_ms(chain)


def test_the_path_ends_with_the_call_that_finished_last() -> None:
    assert critical_path_ms([_call(0, 5), _call(6, 11), _call(1, 30)]) == 29
    assert critical_path_ms([]) == 0
