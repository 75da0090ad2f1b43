"""A served gateway freezes what start-up built and spaces young collections by the configured threshold."""

from __future__ import annotations

import gc

from gateway.app import tune_gc


def test_tune_gc_freezes_start_up_and_sets_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_gc(12_345)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (12_345, before[1], before[2])
        tune_gc(0)  # 0: Python's own threshold stays as it is
        assert gc.get_threshold()[0] == 12_345
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
