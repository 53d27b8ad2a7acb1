"""`sloguard generate`: synthetic traffic with injected incidents for a scenario, as JSONL files."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from sloguard.core.spec.timeutil import format_duration

if TYPE_CHECKING:
    pass


def _generate_spread(args: argparse.Namespace, generate: Any, default_s: float, min_s: float) -> int:
    """`generate` for the compact scenarios (ml-depth, llm): --events spread over --duration."""
    from sloguard.core.spec.timeutil import parse_duration

    try:
        duration_s = float(parse_duration(args.duration)) if args.duration else default_s
    except ValueError as e:
        print(f"error: --duration: {e}", file=sys.stderr)
        return 2
    if args.events < 1:
        print(f"error: --events must be at least 1, got {args.events}", file=sys.stderr)
        return 2
    if not args.healthy and duration_s < min_s:
        print(f"note: the {args.scenario} incidents need --duration {format_duration(int(min_s))} or more: "
              "writing healthy traffic", file=sys.stderr)
    paths = generate(args.out, args.seed, duration_s=duration_s, rate=args.events / duration_s, healthy=args.healthy)
    for name, path in paths.items():
        print(f"wrote {path} ({name})")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    if args.scenario == "ml-depth":  # estimated quality, intersections, multivariate drift (depth_scenario.py)
        from sloguard.core.synth import depth_scenario

        return _generate_spread(args, depth_scenario.generate_depth, depth_scenario.DEFAULT_DURATION_S,
                                depth_scenario.MIN_DURATION_S)
    if args.scenario == "llm":  # ratio and threshold SLIs over event attributes (llm_scenario.py)
        from sloguard.core.synth import llm_scenario

        return _generate_spread(args, llm_scenario.generate_llm, llm_scenario.DEFAULT_DURATION_S,
                                llm_scenario.MIN_DURATION_S)
    from sloguard.core.spec.timeutil import parse_duration
    from sloguard.core.synth.definitions import min_duration_s
    from sloguard.core.synth.scenarios import plan, write_scenario

    kwargs: dict[str, Any] = {}
    healthy = args.healthy
    if args.duration:
        try:
            kwargs["duration_s"] = float(parse_duration(args.duration))
        except ValueError as e:
            print(f"error: --duration: {e}", file=sys.stderr)
            return 2
        need = min_duration_s(args.scenario)
        if not healthy and kwargs["duration_s"] < need:  # too short for any incident: healthy traffic
            print(f"note: --duration {args.duration} is too short for the {args.scenario} scenario's incidents "
                  f"(with their clean gaps they need {format_duration(int(need))}): writing healthy traffic "
                  f"without incidents; give --duration {format_duration(int(need))} or more for them",
                  file=sys.stderr)
            healthy = True
    if args.events < 1:
        print(f"error: --events must be at least 1, got {args.events}", file=sys.stderr)
        return 2
    scenario = plan(args.scenario, events=args.events, seed=args.seed, healthy=healthy, **kwargs)
    paths = write_scenario(scenario, args.out)
    for name, path in paths.items():
        print(f"wrote {path} ({name})")
    return 0
