"""Replay throughput as a ratio to a plain read-and-parse of the same file, and memory per run.

    python benchmarks/replay_throughput.py [--events 1000000] [--scenario fraud] [--repeat 3]
    python benchmarks/replay_throughput.py --density 20,300,3000 [--events 600000]

`--density` instead replays the healthy scenario compressed to each density (inference events per
second of event time; `--events` of them, so the span is events / density) and prints the ratio at
each: per-event work dominates dense traffic, per-tick judging sparse traffic.

Generates the scenario once (cached under out/bench/), then in fresh subprocesses, in `--repeat`
rounds run back to back (each ratio is taken within its round; the round with the median is shown):
  * plain: read the JSONL files line by line and orjson.loads each line (the floor);
  * replay of inference.jsonl alone, and of inference + labels + features, through the whole
    dataflow into budget/alerts/dead-letter files;
  * the full replay of a quarter of the lines, to show peak memory does not grow with the input.
Prints lines/s of each, the ratio replay / plain over the same files (the figure to watch: wall
times vary by machine, the ratio much less) and peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from rounds import each_round, median_round

ROOT = Path(__file__).resolve().parent.parent


def _plain(paths: list[Path]) -> dict:
    import orjson

    start = time.perf_counter()
    n = 0
    for path in paths:
        with path.open("rb") as f:
            for line in f:
                with contextlib.suppress(orjson.JSONDecodeError):  # the scenario's malformed burst
                    orjson.loads(line)
                n += 1
    return {"lines": n, "seconds": time.perf_counter() - start}


def _replay(data: Path, config: Path, out: Path, limit: int | None, kinds: list[str]) -> dict:
    sys.path.insert(0, str(ROOT))
    from sloguard.apps.replay import replay
    from sloguard.core.spec.config import load_config

    inputs = {k: data / f"{k}.jsonl" for k in kinds}
    if limit is not None:  # the first `limit` lines of each file
        part = out / "input"
        part.mkdir(parents=True, exist_ok=True)
        for k, p in inputs.items():
            with p.open("rb") as src, (part / p.name).open("wb") as dst:
                for i, line in enumerate(src):
                    if i >= limit:
                        break
                    dst.write(line)
            inputs[k] = part / p.name
    n = 0
    for p in inputs.values():
        with p.open("rb") as f:
            n += sum(1 for _ in f)
    start = time.perf_counter()
    counts = replay(load_config(config), inputs, out / "run")
    seconds = time.perf_counter() - start
    return {"lines": n, "seconds": seconds, "peak_rss_mib": _peak_rss_mib(), "outputs": dict(counts)}


def _peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM on Linux (ru_maxrss would carry the parent's peak over fork +
    exec, and the parent may just have generated the scenario)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(mode: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rounds(n: int, plain_args: tuple[str, ...], replay_args: tuple[str, ...]) -> tuple[dict, dict, list[float]]:
    """`n` rounds of plain then replay, back to back; each ratio taken within its round (this host's
    speed drifts between minutes, so one side's best of N against the other's would compare runs
    made far apart). Returns the round with the median ratio and every round's ratio."""
    runs = []
    for _ in range(n):
        plain, run = _child(*plain_args), _child(*replay_args)
        runs.append((plain, run, (run["lines"] / run["seconds"]) / (plain["lines"] / plain["seconds"])))
    ratios = [r[2] for r in runs]
    plain, run, _ = runs[median_round(ratios)]
    return plain, run, ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scenario", default="fraud", choices=("fraud", "recsys"))
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of plain then replay; each ratio is taken within its round, the median shown")
    parser.add_argument("--density", default=None, help="comma-separated events/s of event time (healthy scenario)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, *rest = args.child
        if mode == "plain":
            result = _plain([Path(p) for p in rest])
        else:
            limit = int(rest[3]) if rest[3] != "all" else None
            result = _replay(Path(rest[0]), Path(rest[1]), Path(rest[2]), limit, rest[4].split(","))
        print(json.dumps(result))
        return 0

    sys.path.insert(0, str(ROOT))
    from sloguard.core.synth.scenarios import plan, write_scenario

    if args.density:
        return densities(args, [float(d) for d in args.density.split(",")])
    data = ROOT / "out" / "bench" / f"{args.scenario}-{args.events}"
    if not (data / "manifest.json").exists():
        print(f"generating {args.events:,} {args.scenario} events into {data} ...", flush=True)
        write_scenario(plan(args.scenario, events=args.events, seed=7), data)
    config = ROOT / "examples" / f"{args.scenario}.yaml"
    every = ["inference", "labels", "features"]
    files = {k: str(data / f"{k}.jsonl") for k in every}

    rows = []
    for kinds in (["inference"], every):
        plain, run, ratios = _rounds(args.repeat, ("plain", *(files[k] for k in kinds)),
                                     ("replay", str(data), str(config), str(data / "run"), "all", ",".join(kinds)))
        rows.append((kinds, plain, run, ratios))
    quarter = _child("replay", str(data), str(config), str(data / "run-quarter"), str(args.events // 4),
                     ",".join(every))

    print(f"scenario {args.scenario}, {args.events:,} inference events, {args.repeat} round(s), the median shown")
    for kinds, plain, run, ratios in rows:
        p_rate, r_rate = plain["lines"] / plain["seconds"], run["lines"] / run["seconds"]
        print(f"  {' + '.join(kinds)} ({run['lines']:,} lines)")
        print(f"    plain read + orjson.loads : {p_rate:12,.0f} lines/s")
        print(f"    sloguard replay           : {r_rate:12,.0f} lines/s   outputs {run['outputs']}")
        print(f"    ratio replay / plain      : {r_rate / p_rate:12.2f}   (aim >= 0.40){each_round(ratios)}")
    full = rows[-1][2]
    print(f"  peak RSS, replay of {full['lines']:>10,} lines: {full['peak_rss_mib']:7.1f} MiB")
    print(f"  peak RSS, replay of {quarter['lines']:>10,} lines: {quarter['peak_rss_mib']:7.1f} MiB")
    return 0


def densities(args: argparse.Namespace, rates: list[float]) -> int:
    from sloguard.core.synth.scenarios import plan, write_scenario

    config = ROOT / "examples" / f"{args.scenario}.yaml"
    every = ["inference", "labels", "features"]
    print(f"scenario {args.scenario} (healthy), {args.events:,} inference events per density, "
          f"{args.repeat} round(s), the median shown")
    for rate in rates:
        data = ROOT / "out" / "bench" / f"{args.scenario}-{args.events}-{rate:g}eps"
        if not (data / "manifest.json").exists():
            print(f"generating {args.events:,} events at {rate:g}/s of event time into {data} ...", flush=True)
            write_scenario(plan(args.scenario, events=args.events, seed=7, duration_s=args.events / rate,
                                healthy=True), data)
        files = [str(data / f"{k}.jsonl") for k in every]
        plain, run, ratios = _rounds(args.repeat, ("plain", *files),
                                     ("replay", str(data), str(config), str(data / "run"), "all", ",".join(every)))
        p_rate, r_rate = plain["lines"] / plain["seconds"], run["lines"] / run["seconds"]
        print(f"  {rate:>6g} events/s of event time, {run['lines']:,} lines over {args.events / rate / 3600:.1f} h: "
              f"plain {p_rate:,.0f} lines/s, replay {r_rate:,.0f} lines/s, ratio {r_rate / p_rate:.2f} "
              f"(aim >= 0.40), peak RSS {run['peak_rss_mib']:.0f} MiB{each_round(ratios)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
