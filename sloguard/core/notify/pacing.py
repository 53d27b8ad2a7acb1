"""Per-receiver pacing for the notifier: at most one message per `min_interval_s` to each webhook,
and a receiver's Retry-After holds every message bound for it, not only the one that got the 429.

Slack allows about one message a second per incoming webhook (and per channel on the Web API);
bursts beyond it are answered 429 with Retry-After. A pace key names one receiver (a webhook URL's
fingerprint, or a token and channel): two routes posting to one webhook share its pace.

Pure: every call takes `now`.

>>> p = Pacer(min_interval_s=1.0)
>>> p.ready("hook", 10.0)
True
>>> p.sent("hook", 10.0); p.ready("hook", 10.5), p.next_at("hook")
(False, 11.0)
>>> p.hold("hook", until=14.0); p.next_at("hook")
14.0
"""

from __future__ import annotations

from collections.abc import Hashable


class Pacer:
    """When each receiver may next be sent to."""

    def __init__(self, min_interval_s: float = 1.0) -> None:
        if min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")
        self.min_interval_s = float(min_interval_s)
        self._next: dict[Hashable, float] = {}

    def ready(self, key: Hashable, now: float) -> bool:
        return self._next.get(key, -1e300) <= now

    def next_at(self, key: Hashable) -> float:
        return self._next.get(key, -1e300)

    def sent(self, key: Hashable, now: float) -> None:
        """A message to `key` is going out at `now`: the next may follow `min_interval_s` later."""
        self._next[key] = max(self._next.get(key, -1e300), now + self.min_interval_s)

    def hold(self, key: Hashable, until: float) -> None:
        """The receiver said to wait (429 Retry-After): nothing goes to it before `until`."""
        self._next[key] = max(self._next.get(key, -1e300), until)
