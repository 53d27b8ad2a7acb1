"""The collector's settings while a flow runs (sloguard/apps/streaming_gc.py)."""

from __future__ import annotations

import gc
import weakref

from sloguard.apps.streaming_gc import GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD, streaming_gc


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_a_running_flow_collects_rarely_and_skips_what_start_up_made() -> None:
    before = gc.get_threshold()
    start_up = [object()]  # a tracked container alive before the flow starts
    with streaming_gc():
        assert gc.get_threshold() == (GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
        assert before[0] < GEN0_THRESHOLD
        assert gc.get_freeze_count() > 0
        assert not any(o is start_up for o in gc.get_objects())  # frozen: no collection walks it
        made = [object()]
        assert any(o is made for o in gc.get_objects())  # what the run makes is collected as usual


def test_cycles_made_while_the_flow_runs_are_still_collected() -> None:
    with streaming_gc():
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None


def test_the_previous_settings_come_back_even_when_the_run_fails() -> None:
    before = gc.get_threshold()
    try:
        with streaming_gc():
            raise RuntimeError("the flow failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
