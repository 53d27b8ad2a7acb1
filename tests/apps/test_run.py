"""`sloguard run`'s stop request: the first SIGINT or SIGTERM asks for a graceful stop, a second one
stops at once, and the handlers that were there before come back. The whole stop on the real broker
is tests/flows/test_kafka_runtime.py (SIGTERM mid-run, then a resume)."""

from __future__ import annotations

import io
import os
import signal
import threading

import pytest

from sloguard.apps.run import StopRequest


def _wait_for(condition) -> None:
    """A signal sent to this process runs its handler at the main thread's next bytecode boundary."""
    for _ in range(1000):
        if condition():
            return
    raise AssertionError("the signal handler did not run")


def test_the_first_signal_asks_for_a_stop_and_the_second_stops_at_once() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    out = io.StringIO()
    stop = StopRequest(out)
    assert not stop()
    with pytest.raises(KeyboardInterrupt), stop.installed():
        os.kill(os.getpid(), signal.SIGTERM)
        _wait_for(stop)
        assert stop.signal == signal.SIGTERM
        assert out.getvalue() == ("sloguard run: SIGTERM, stopping after the current batches "
                                  "(signal again to stop at once)\n")
        os.kill(os.getpid(), signal.SIGINT)  # the second: raises inside the block
        _wait_for(lambda: False)
    assert {s: signal.getsignal(s) for s in before} == before  # put back, even after the interrupt
    assert stop.signal == signal.SIGTERM  # the first one is what the exit status reports


def test_outside_the_main_thread_no_handler_is_installed() -> None:
    """Python lets only the main thread set handlers; `run` called from another thread (the live
    demo, tests) keeps the process's handlers and stops as it did before."""
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def body() -> None:
        with StopRequest(io.StringIO()).installed() as stop:
            seen.append((signal.getsignal(signal.SIGTERM), stop()))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [(before, False)]
