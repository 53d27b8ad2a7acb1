"""The JSONL replay source: event-time merge, an exact watermark, blank lines, resume state."""

from __future__ import annotations

import io

import orjson
from factories import T0, event

from sloguard.connectors.files import JsonlReplaySource, ProgressPrinter


def write(path, rows):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def drain(source, resume=None):
    part = source.build_part("s", "replay", resume)
    out = []
    try:
        while True:
            out.extend(part.next_batch())
    except StopIteration:
        pass
    return out, part


def test_files_are_merged_in_event_time_and_the_watermark_never_passes_an_unread_event(tmp_path):
    inf = write(tmp_path / "i.jsonl", [event(i, T0 + i) for i in range(1000)])
    labels = [{"id": f"e{i}", "model": "m", "label": 1, "ts": T0 + 300 + i} for i in range(500)]
    lab = write(tmp_path / "l.jsonl", labels)
    batches, _ = drain(JsonlReplaySource({"inference": inf, "labels": lab}, chunk_lines=100))
    assert sum(len(b.values) for b in batches) == 1500
    unread = {"inference": [T0 + i for i in range(1000)], "labels": [T0 + 300 + i for i in range(500)]}
    position = {"inference": 0, "labels": 0}
    previous = float("-inf")
    for b in batches:
        position[b.kind] += len(b.values)
        pending = [unread[k][position[k]] for k in unread if position[k] < len(unread[k])]
        assert b.watermark <= min(pending, default=float("inf"))  # nothing still unread is older
        assert b.watermark >= previous
        previous = b.watermark
    assert batches[-1].watermark == T0 + 999
    assert {b.kind for b in batches[:3]} == {"inference"}  # labels start 300 s later


def test_blank_lines_are_skipped_and_offsets_are_line_numbers(tmp_path):
    path = tmp_path / "i.jsonl"
    path.write_bytes(b"\n".join([orjson.dumps(event(0, T0)), b"", b"   ", orjson.dumps(event(1, T0 + 1))]) + b"\n")
    batches, _ = drain(JsonlReplaySource({"inference": path}, chunk_lines=2))
    got = [(o, orjson.loads(v)["id"]) for b in batches for o, v in zip(b.offsets, b.values, strict=True)]
    assert got == [(0, "e0"), (3, "e1")]


def test_resuming_from_a_snapshot_continues_exactly_where_it_stopped(tmp_path):
    inf = write(tmp_path / "i.jsonl", [event(i, T0 + i) for i in range(250)])
    source = JsonlReplaySource({"inference": inf}, chunk_lines=100)
    part = source.build_part("s", "replay", None)
    first = part.next_batch()
    state = part.snapshot()
    part.close()
    rest, _ = drain(source, state)
    ids = [orjson.loads(v)["id"] for b in first + rest for v in b.values]
    assert ids == [f"e{i}" for i in range(250)]


def test_progress_printer_reports_percent_and_rate():
    stream = io.StringIO()
    clock = iter([0.0, 0.5, 2.0, 4.0])
    printer = ProgressPrinter(stream, every_s=1.0, clock=lambda: next(clock))
    printer(10, 100, 1000)  # at 0.5 s: throttled
    printer(50, 100, 5000)  # at 2.0 s
    printer(100, 100, 10000)  # at 4.0 s: always shown at the end
    text = stream.getvalue()
    assert "50.0%" in text and "100.0%" in text and "10,000 lines" in text and "2,500 lines/s" in text
    assert "10.0%" not in text
