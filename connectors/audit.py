"""The rollout gate's audit log: one JSON line per decision served and per refused request, bounded.

An audit log an unauthenticated client can grow without limit is a disk-filling attack, so two
bounds hold whatever callers do:

* **size**: the file rotates at `max_bytes` (like `logging.handlers.RotatingFileHandler`:
  `gate.jsonl` -> `gate.jsonl.1` -> ... -> `gate.jsonl.<backups>`, the oldest dropped), so the log
  takes at most `max_bytes x (backups + 1)` on disk;
* **refusals**: at most `refusals_per_minute` refused requests are written each minute (over all
  clients: an attacker can change address at will); the rest are counted, and the next refusal
  written says how many were left out (`suppressed_refusals`). Decisions served to authorized
  callers are always written.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

MAX_BYTES = 64 * 1024 * 1024
BACKUPS = 3
REFUSALS_PER_MINUTE = 60


class AuditLog:
    """Append-only JSONL record of every decision served (and, rate-limited, every refusal)."""

    def __init__(self, path: Path | None, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS,
                 refusals_per_minute: int = REFUSALS_PER_MINUTE, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.refusals_per_minute = refusals_per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._fh = None
        self._size = 0
        self._minute = -1
        self._refusals = 0  # written in the current minute
        self.suppressed = 0  # refusals not written since the last one that was
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._open()

    def _open(self) -> None:
        assert self.path is not None
        self._fh = self.path.open("ab", buffering=0)
        self._size = self.path.stat().st_size

    def write(self, entry: Mapping[str, Any]) -> None:
        if self._fh is None:
            return
        with self._lock:
            if entry.get("refused"):
                minute = int(self.clock() // 60)
                if minute != self._minute:
                    self._minute, self._refusals = minute, 0
                if self._refusals >= self.refusals_per_minute:
                    self.suppressed += 1
                    return
                self._refusals += 1
                if self.suppressed:
                    entry = {**entry, "suppressed_refusals": self.suppressed}
                    self.suppressed = 0
            line = orjson.dumps(entry) + b"\n"
            if self._size + len(line) > self.max_bytes and self._size:
                self._rotate()
            self._fh.write(line)
            self._size += len(line)

    def _rotate(self) -> None:
        """gate.jsonl -> gate.jsonl.1 -> ... -> gate.jsonl.<backups> (that one's old content dropped)."""
        assert self.path is not None and self._fh is not None
        self._fh.close()
        name = self.path.name
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{name}.{n + 1}"))
        if self.backups:
            os.replace(self.path, self.path.with_name(f"{name}.1"))
        else:
            self.path.unlink()
        self._open()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
