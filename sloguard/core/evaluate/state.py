"""What shapes a model's recovery state, and how state written for another config is carried over.

The judge's and the shards' state (judge.py, shard.py) lays counters out by position: a column
per SLO counter in every window bucket, blocks of slice-ring columns, SLO indices in a few dicts.
A snapshot therefore records its `fingerprint`: the state schema version, sloguard's version, the
SLOs by name with a signature of what their counters mean, the column and block layout, the
window tiers and ring bases, shards and segments.

On resume with another config, `plan_migration` compares the two fingerprints:

* the same SLOs in another order are the same state: every column, block and index is mapped by
  SLO name (`migrate_judge`, `migrate_shard`);
* a removed SLO's counters are dropped and its firing alerts resolved at the next tick; an added
  SLO starts with empty windows, as a new SLO would; an SLO named in `--reset-state` starts afresh
  the same way (its firing alerts resolve through their hold unless its new windows burn);
* everything else is refused (`StateMismatch`) with what changed and what to do: an SLO whose
  definition changed under the same name (its counters would be read with another meaning), a
  change of shards, segments, evaluation interval, window tiers or slice-ring bucket, a state
  schema this sloguard does not read, or an added SLO that reads predictions or labels in a way
  the ones waiting to be joined did not keep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sloguard import __version__
from sloguard.core.evaluate.summary import Rows
from sloguard.core.spec.model import Slo, StateMismatch
from sloguard.core.stats.windows import WindowLayout, Windows

if TYPE_CHECKING:
    from sloguard.core.evaluate.judge_state import JudgeState
    from sloguard.core.evaluate.plan import ModelPlan
    from sloguard.core.evaluate.shard import ShardState

#: Bumped whenever the pickled state's layout changes; a snapshot of another schema is refused.
STATE_SCHEMA = 4  # 4: the judge runs as `scale.judge_parts` keyed parts

_REMEDY = "start with a new --recovery-dir, or resume with the config that wrote this state"


def signature(slo: Slo, metric: bool) -> str:
    """What an SLO's stored counters mean: its SLI and parameters, and for metric SLOs how slices
    are judged (the objective decides a slice's verdict). Its window and alert rules are not in
    it: they read the counters, they do not shape them."""
    judged = (slo.budgeting.method, slo.budgeting.slice_s, slo.budgeting.min_samples, slo.objective) if metric else ()
    return json.dumps([slo.sli.kind, slo.sli.params, judged], sort_keys=True, default=str)


def _ring(blocks: dict[str, Any], base_s: int) -> dict[str, Any]:
    return {"base": base_s, "blocks": {name: [b.start, b.width] for name, b in blocks.items()}}


def _truth_names(plan: ModelPlan) -> list[str]:
    """The label columns the shards keep per held label (as `pieces.label_piece` builds them)."""
    names: dict[str, None] = {}
    for b in plan.slices.labelled.values():
        if b.kind == "confusion":
            names[f"positive:{b.positive}"] = None
        elif b.kind == "regression":
            names["number"] = None
    return list(names)


def fingerprint(plan: ModelPlan) -> dict[str, Any]:
    """Everything that shapes `plan`'s model state (see the module docstring)."""
    return {
        "schema": STATE_SCHEMA,
        "sloguard": __version__,
        "model": plan.name,
        "shards": plan.shards,
        "judge_parts": plan.parts,
        "interval": plan.interval_s,
        "segments": list(plan.attrs),
        "slos": [s.name for s in plan.slos],
        "signatures": {s.name: signature(s, m) for s, m in zip(plan.slos, plan.metric, strict=True)},
        "slices": {s.name: s.budgeting.slice_s for s in plan.slos},
        "columns": list(plan.layout.names),
        "windows": list(plan.layout.windows),
        "tiers": [t.bucket_s for t in plan.layout.window_layout.tiers],
        "labelled": _ring(plan.slices.labelled, plan.slices.labelled_base_s),
        "live": _ring(plan.slices.live, plan.slices.live_base_s),
        "predicted": sorted(b.name for b in plan.slices.labelled.values() if b.kind in ("confusion", "regression")),
        "truth": _truth_names(plan),
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "sloguard"} == {k: v for k, v in b.items() if k != "sloguard"}


@dataclass
class Migration:
    """How old state maps onto a new plan: per kind of column, the old column of each new one."""

    plan: ModelPlan
    old: dict[str, Any]
    columns: np.ndarray  # new counter column -> old column, -1: starts at zero
    labelled: np.ndarray
    live: np.ndarray
    slo_index: dict[int, int]  # old SLO index -> new index, for the SLOs carried over
    dropped: set[str] = field(default_factory=set)  # SLO names whose old state is dropped

    def describe(self) -> str:
        new = [s.name for s in self.plan.slos]
        old = self.old["slos"]
        kept = [n for n in old if n in new and n not in self.dropped]
        parts = []
        if kept != [n for n in new if n in kept]:
            parts.append("SLOs reordered")
        if set(old) - set(new):
            parts.append(f"removed: {', '.join(sorted(set(old) - set(new)))}")
        if set(new) - set(old):
            parts.append(f"added: {', '.join(sorted(set(new) - set(old)))}")
        reset = sorted(self.dropped & set(new))
        if reset:
            parts.append(f"reset: {', '.join(reset)}")
        return "; ".join(parts) or "nothing that shapes the state"


def plan_migration(old: dict[str, Any] | None, plan: ModelPlan, reset: frozenset[str] = frozenset()
                   ) -> Migration | None:
    """None when `old` is `plan`'s own fingerprint; a `Migration` when the state maps by SLO name;
    else `StateMismatch` saying which SLOs (or what) changed and what to do."""
    new = fingerprint(plan)
    where = f"the recovery state of model {plan.name!r}"
    if old is None or old.get("schema") != STATE_SCHEMA:
        written = "an older sloguard" if old is None else (
            f"sloguard {old.get('sloguard')} in state schema {old.get('schema')}")
        raise StateMismatch(f"{where} was written by {written}; this sloguard {__version__} reads state schema "
                            f"{STATE_SCHEMA}: start with a new --recovery-dir")
    if _same(old, new) and not (reset & set(new["slos"])):
        return None
    problems = []
    for key, what in (("shards", "scale.shards"), ("judge_parts", "scale.judge_parts"),
                      ("segments", f"models.{plan.name}.segments"), ("interval", "evaluation_interval")):
        if old[key] != new[key]:
            problems.append(f"{what} changed ({old[key]} -> {new[key]})")
    if old["judge_parts"] != new["judge_parts"]:  # unset, it follows the run's worker count
        problems.append(f"set scale.judge_parts: {old['judge_parts']} in the config to resume this state with "
                        "another number of workers")
    changed = sorted(n for n in set(old["slos"]) & set(new["slos"])
                     if old["signatures"][n] != new["signatures"][n] and n not in reset)
    if changed:
        problems.append(f"SLOs changed under the same name: {', '.join(changed)} (their stored counters mean "
                        f"something else now); give --reset-state {' --reset-state '.join(changed)} to start "
                        "their budgets afresh")
    if old["tiers"] != new["tiers"]:
        brought = sorted(s.name for s in plan.slos if not _windows_of(s) <= set(old["windows"]))
        problems.append(f"the window buckets changed ({_list(old['tiers'])} s -> {_list(new['tiers'])} s)"
                        + (f", brought by the windows of {', '.join(brought)}" if brought else ""))
    for ring in ("labelled", "live"):
        if old[ring]["base"] and new[ring]["base"] and old[ring]["base"] != new[ring]["base"]:
            moved = sorted(n for n in new["slos"] if old["slices"].get(n) != new["slices"][n])
            problems.append(f"the {ring} slice ring's bucket changed ({old[ring]['base']} s -> "
                            f"{new[ring]['base']} s), by the slices of {', '.join(moved) or 'the SLOs'}")
    if problems:
        raise StateMismatch(f"{where} was written for a different config: " + "; ".join(problems) + f"; or {_REMEDY}")
    dropped = (set(old["slos"]) - set(new["slos"])) | (reset & set(old["slos"]))
    mig = Migration(plan, old, _map(old["columns"], new["columns"], _owner, dropped),
                    _ring_map(old["labelled"], new["labelled"], old, dropped),
                    _ring_map(old["live"], new["live"], old, dropped),
                    {i: new["slos"].index(n) for i, n in enumerate(old["slos"]) if n in new["slos"]
                     and n not in dropped}, dropped)
    return mig


def _windows_of(slo: Slo) -> set[int]:
    return {slo.window_s, *(w for r in slo.rules for w in (r.long_window_s, r.short_window_s))}


def _list(values: list[int]) -> str:
    return ", ".join(map(str, values))


def _owner(column: str) -> str:
    return column.split(":")[0] if ":" in column else ""


def _map(old: list[str], new: list[str], owner: Any, dropped: set[str]) -> np.ndarray:
    where = {name: i for i, name in enumerate(old)}
    return np.array([-1 if owner(n) in dropped else where.get(n, -1) for n in new], np.int64)


def _ring_map(old: dict[str, Any], new: dict[str, Any], fp: dict[str, Any], dropped: set[str]) -> np.ndarray:
    """New ring column -> old one, block by block; a block whose width changed starts at zero, as
    does the verdict column of a dropped SLO."""
    width = max((s + w for s, w in new["blocks"].values()), default=0)
    out = np.full(width, -1, np.int64)
    for name, (start, w) in new["blocks"].items():
        was = old["blocks"].get(name)
        if was is None or was[1] != w or (name.startswith("verdict:") and name[len("verdict:"):] in dropped):
            continue
        out[start : start + w] = np.arange(was[0], was[0] + w)
    return out


# ---- carrying state over ------------------------------------------------------------------------


def _take(matrix: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """`matrix[:, cols]`, zeros where `cols` is -1."""
    out = np.zeros((len(matrix), len(cols)))
    ok = cols >= 0
    out[:, ok] = matrix[:, cols[ok]]
    return out


def rewindow(old: Windows, layout: WindowLayout, cols: np.ndarray) -> Windows:
    """`old`'s buckets in a new layout with the same bucket sizes, columns picked by `cols`."""
    new = Windows(layout, len(cols))
    size = {t.bucket_s: k for k, t in enumerate(layout.tiers)}
    for k, tier in enumerate(old.layout.tiers):
        j = size[tier.bucket_s]
        new.keep_from[j] = old.keep_from[k]
        rows = np.flatnonzero((old.index[k] >= 0) & (old.index[k] >= old.keep_from[k]))
        for i, vector in zip(old.index[k][rows].tolist(), _take(old.counts[k][rows], cols), strict=True):
            new.add_bucket(j, i, vector)
    new.dropped = old.dropped
    return new


def _rows(parts: list[Rows], cols: np.ndarray) -> list[Rows]:
    return [Rows(r.key, r.start, _take(r.rows, cols), r.tick) for r in parts]


def migrate_judge(state: JudgeState, mig: Migration) -> JudgeState:
    """Carry a judge's state over to `mig.plan` (in place; returns it)."""
    plan, index = mig.plan, mig.slo_index
    labelled, live = plan.slices.labelled_layout, plan.slices.live_layout
    for key in state.ordered:
        key.windows = rewindow(key.windows, plan.layout.window_layout, mig.columns)
        key.labelled = rewindow(key.labelled, labelled, mig.labelled) if key.labelled and labelled else (
            None if labelled is None else Windows(labelled, plan.slices.labelled_ncols))
        key.live = rewindow(key.live, live, mig.live) if key.live and live else (
            None if live is None else Windows(live, plan.slices.live_ncols))
        key.sketches = {(index[i], start): s for (i, start), s in key.sketches.items() if i in index}
        for name in ("values", "details", "value_start", "counted"):
            setattr(key, name, {index[i]: v for i, v in getattr(key, name).items() if i in index})
        key.cache, key.changed = None, True
    state.pending_windows = _rows(state.pending_windows, mig.columns)
    state.pending_live = _rows(state.pending_live, mig.live)
    state.pending_labelled = {t: _rows(rows, mig.labelled) for t, rows in state.pending_labelled.items()}
    # the alert book stays: a removed SLO's (or rule's) firing alerts are resolved by the judge at its
    # next tick (AlertBook.orphans), a reset SLO's resolve through its hold once its empty windows burn nothing
    state.label_waits.waiting = {(key, index[i]): slices for (key, i), slices in state.label_waits.waiting.items()
                                 if i in index}
    return state


def migrate_shard(state: ShardState, mig: Migration) -> ShardState:
    """Carry a shard's label store over to `mig.plan`: prediction and label columns by name."""
    store = state.labels
    new = fingerprint(mig.plan)
    if store is None:
        if mig.plan.labelled:
            from sloguard.core.evaluate.labels import LabelStore

            config = mig.plan.config
            state.labels = LabelStore(mig.plan.model.label_delay_s,
                                      max(1, mig.plan.model.max_pending_labels // mig.plan.shards),
                                      max(config.allowed_lateness_s, mig.plan.interval_s))
        return state
    added = sorted(set(new["predicted"]) - set(mig.old["predicted"]))
    added_truth = sorted(set(new["truth"]) - set(mig.old["truth"]))
    waiting, held = store.pending, len(store.held)  # predictions waiting for labels, labels for predictions
    if (added and waiting) or (added_truth and held):
        readers = sorted(s.name for s in mig.plan.slos if s.name not in mig.old["slos"] or s.name in mig.dropped)
        raise StateMismatch(
            f"the recovery state of model {mig.plan.name!r}: {', '.join(readers) or 'the new SLOs'} read the "
            f"predictions or labels in a way ({', '.join(added + added_truth)}) the {waiting} predictions and "
            f"{held} labels waiting to be joined did not keep; {_REMEDY}")
    keep = {"ts", "answered", *(f"code{j}" for j in range(len(mig.plan.attrs))), *new["predicted"]}
    for block in store.blocks:
        block.cols = {name: col for name, col in block.cols.items() if name in keep}
    for chunk in store.held.chunks:  # held labels: only the label columns the new SLOs read
        chunk.truth = {name: col for name, col in chunk.truth.items() if name in new["truth"]}
    store.truth_names = tuple(n for n in new["truth"] if n in store.truth_names)
    return state


__all__ = ["STATE_SCHEMA", "Migration", "fingerprint", "migrate_judge", "migrate_shard", "plan_migration",
           "rewindow", "signature"]
