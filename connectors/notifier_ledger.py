"""The notifier's ledger of delivered notices on disk.

A snapshot plus a journal fsynced before each commit, so a restart neither loses nor repeats a post.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from sloguard.core.notify.notify_policy import (
    SNAPSHOT_VERSION,
)

log = logging.getLogger("sloguard.notifier")


class StateFile:
    """The ledger on disk: a snapshot plus a journal of changes since it.

    Each settled notice is appended to the journal (``<path>.journal``, one JSON line) and
    flushed to the operating system at once, so a killed process loses nothing; :meth:`sync`
    fsyncs it before offsets are committed, so a crashed machine loses nothing committed. When
    the journal outgrows the ledger, :meth:`compact` writes a new snapshot atomically (write,
    fsync, rename, fsync the directory) and empties the journal. An exclusive lock keeps two
    notifiers off one file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path.with_name(self.path.name + ".lock"), "a+")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise RuntimeError(f"{self.path} is in use by another notifier (one state file per "
                               "notifier process: set notifier.state_file)") from None
        self._journal: Any = None
        self.journal_lines = 0
        self._unsynced = False

    def load(self) -> dict[str, Any] | None:
        """The saved ledger (snapshot, then the journal's entries in order), None when there is
        none. An unreadable snapshot is moved aside; a torn last journal line is ignored."""
        snapshot: dict[str, Any] | None = None
        try:
            snapshot = orjson.loads(self.path.read_bytes())
            if not isinstance(snapshot, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            snapshot = None
        except ValueError as e:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            log.warning("notifier state %s is unreadable (%s); moved to %s: alerts already posted "
                        "may be posted again", self.path, e, aside)
            snapshot = None
        entries: list[Any] = []
        try:
            lines = self.journal_path.read_bytes().splitlines()
        except FileNotFoundError:
            lines = []
        for n, line in enumerate(lines):
            try:
                entries.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                if n != len(lines) - 1:
                    log.warning("notifier journal %s: line %d unreadable, skipped", self.journal_path, n + 1)
        self.journal_lines = len(lines)
        if snapshot is None and not entries:
            return None
        snapshot = snapshot or {"version": SNAPSHOT_VERSION, "episodes": []}
        snapshot["episodes"] = [*snapshot.get("episodes", []), *entries]
        return snapshot

    def append(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Journal ledger entries (written through to the OS: safe from a killed process)."""
        data = b"".join(orjson.dumps(e) + b"\n" for e in entries)
        if not data:
            return
        if self._journal is None:
            self._journal = open(self.journal_path, "ab")  # noqa: SIM115
        self._journal.write(data)
        self._journal.flush()
        self.journal_lines += data.count(b"\n")
        self._unsynced = True

    def sync(self) -> None:
        """fsync the journal (before offsets are committed)."""
        if self._journal is not None and self._unsynced:
            os.fsync(self._journal.fileno())
            self._unsynced = False

    def compact(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the snapshot atomically with `snapshot` and empty the journal."""
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(orjson.dumps(snapshot))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fsync_dir()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        with open(self.journal_path, "wb") as fh:
            os.fsync(fh.fileno())
        self.journal_lines = 0
        self._unsynced = False

    def _fsync_dir(self) -> None:
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def close(self) -> None:
        if self._journal is not None:
            with contextlib.suppress(OSError):
                self.sync()
            self._journal.close()
            self._journal = None
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()
