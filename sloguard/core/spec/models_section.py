"""The `models:` section: each model's segments, label join, fairness and baseline (drift references
per model and per segment, calibration, PCA), checked for meaning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from sloguard.core.spec.check import Checker, duration_or_zero, label_coverage_rule
from sloguard.core.spec.model import Model
from sloguard.core.spec.sli import DIMENSIONS
from sloguard.core.spec.timeutil import format_duration
from sloguard.core.stats.drift_bins import reference_from_dict

_MODEL_KEYS = {
    "segments",
    "features",
    "no_data_after",
    "label_delay",
    "baseline",
    "fairness",
    "max_pending_labels",
    "health",
    "description",
    "label_coverage",
}


def parse_model(c: Checker, name: str, m: Any, base_dir: Path, pending: bool = False) -> Model:
    path = f"models.{name}"
    m = c.mapping(m, path, _MODEL_KEYS)
    baseline = None
    metrics: dict[str, float] = {}
    reference: dict[str, dict[str, Any]] = {}
    by_segment: dict[str, dict[str, Any]] = {}
    slice_values: dict[str, list[float]] = {}
    calibration: dict[str, dict[str, Any]] = {}
    pca_reference: dict[str, dict[str, Any]] = {}
    if m.get("baseline") is not None:
        baseline = (base_dir / str(m["baseline"])).resolve()
        try:
            doc = orjson.loads(baseline.read_bytes())
            metrics = {k: float(v) for k, v in (doc.get("metrics") or {}).items() if v is not None}
            reference = _references(c, doc.get("reference") or {}, f"{path}.baseline", baseline)
            by_segment = _segment_refs(c, doc.get("segment_references") or {}, reference, f"{path}.baseline",
                                       baseline)
            slice_values = {k: [float(x) for x in v] for k, v in (doc.get("slice_values") or {}).items()}
            calibration = _baseline_section(c, doc, "calibration", f"{path}.baseline", baseline)
            pca_reference = _baseline_section(c, doc, "multivariate_reference", f"{path}.baseline", baseline)
        except FileNotFoundError:
            if not pending:
                c.fail(f"{path}.baseline", f"file {baseline} not found (make one with `sloguard baseline`)")
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
            c.fail(f"{path}.baseline", f"{baseline} is not a baseline file: {e}")
    segments = c.names(m.get("segments"), f"{path}.segments")
    fairness = c.mapping(m.get("fairness"), f"{path}.fairness", {"attribute", "attributes", "min_support"})
    attribute = fairness.get("attribute")
    if attribute is not None and (not isinstance(attribute, str) or not attribute):
        c.fail(f"{path}.fairness.attribute", "must be a segment attribute name (e.g. merchant_type)")
        attribute = None
    if fairness.get("attributes") is not None:
        attribute = _intersection(c, fairness, f"{path}.fairness")
    added: tuple[str, ...] = ()
    if attribute and attribute not in segments:
        # fairness compares the groups that segment keys count: the attribute becomes a segmentation,
        # so every SLO gets a budget per group; `sloguard validate` says so
        segments, added = (*segments, attribute), (attribute,)
    health = c.mapping(m.get("health"), f"{path}.health", {"weights"})
    label_delay = c.duration(m.get("label_delay"), f"{path}.label_delay", 7 * 86_400) or 0
    coverage = c.mapping(m.get("label_coverage"), f"{path}.label_coverage", {"min_share", "wait"})
    min_share, wait = label_coverage_rule(c, coverage, f"{path}.label_coverage", DEFAULT_LABEL_SHARE, label_delay)
    if wait > label_delay:
        c.fail(f"{path}.label_coverage.wait", f"{format_duration(wait)} is longer than the label_delay "
               f"({duration_or_zero(label_delay)}): no label can come after it")
    return Model(
        name=name,
        segments=segments,
        features=c.names(m.get("features"), f"{path}.features"),
        no_data_after_s=c.duration(m.get("no_data_after"), f"{path}.no_data_after", 600) or 600,
        label_delay_s=label_delay,
        baseline=baseline,
        baseline_metrics=metrics,
        reference=reference,
        segment_reference=by_segment,
        slice_values=slice_values,
        calibration=calibration,
        pca_reference=pca_reference,
        added_segments=added,
        fairness_attribute=attribute,
        min_support=int(
            c.number(fairness.get("min_support"), f"{path}.fairness.min_support", 1, 1e9, default=30) or 30
        ),
        max_pending_labels=int(
            c.number(m.get("max_pending_labels"), f"{path}.max_pending_labels", 1, 1e9, default=1_000_000) or 1_000_000
        ),
        health_weights=_weights(c, health.get("weights"), f"{path}.health.weights"),
        min_label_share=min_share,
        label_wait_s=wait,
    )


DEFAULT_LABEL_SHARE = 0.4  # models.<m>.label_coverage.min_share


def _intersection(c: Checker, fairness: dict, path: str) -> str | None:
    """`fairness.attributes: [region, age_band]`: the intersection's segment attribute (intersections.py)."""
    from sloguard.core.messages.intersections import SEPARATOR, intersection_name

    names = c.names(fairness["attributes"], f"{path}.attributes")
    if "attribute" in fairness:
        c.fail(f"{path}.attributes", "give attribute (one) or attributes (their intersection), not both")
    if len(names) < 2 or len(set(names)) != len(names):
        c.fail(f"{path}.attributes", f"needs at least two distinct attributes to intersect, got {list(names)}")
        return None
    if any(SEPARATOR in n for n in names):
        c.fail(f"{path}.attributes", f"attribute names must not contain {SEPARATOR!r}")
        return None
    return intersection_name(names)


def _weights(c: Checker, raw: Any, path: str) -> dict[str, float]:
    out = {}
    for dim, w in c.mapping(raw, path, set(DIMENSIONS)).items():
        out[dim] = c.number(w, f"{path}.{dim}", 0, 1e6) or 0.0
    if out and not sum(out.values()):
        c.fail(path, "at least one weight must be > 0")
    return out


def _baseline_section(c: Checker, doc: dict, section: str, path: str, file: Path) -> dict[str, dict[str, Any]]:
    """A baseline's `calibration` (positive class -> calibration.py) or `multivariate_reference`
    (feature set -> multivariate_drift.py) section, each entry checked by loading it."""
    from sloguard.core.stats.calibration import IsotonicCalibration
    from sloguard.core.stats.multivariate_drift import PcaReference

    raw = doc.get(section) or {}
    load = IsotonicCalibration.from_dict if section == "calibration" else PcaReference.from_dict
    if not isinstance(raw, dict):
        c.fail(path, f"{file}: {section!r} must be a mapping")
        return {}
    for key, d in raw.items():
        try:
            load(d)
        except (KeyError, TypeError, ValueError) as e:
            c.fail(path, f"{file}: {section} {key!r} is not valid ({e}); re-run sloguard baseline")
            return {}
    return raw


def _references(c: Checker, raw: Any, path: str, file: Path) -> dict[str, dict[str, Any]]:
    """The drift references of a baseline file: feature -> {kind: numeric|categorical, ...}."""
    if not isinstance(raw, dict):
        c.fail(path, f"{file}: 'reference' must map feature names to references")
        return {}
    for feature, ref in raw.items():
        if not isinstance(ref, dict) or ref.get("kind") not in ("numeric", "categorical"):
            c.fail(path, f"{file}: reference of feature {feature!r} has no kind numeric|categorical")
            continue
        try:
            reference_from_dict(ref)
        except (KeyError, TypeError, ValueError) as e:
            c.fail(
                path,
                f"{file}: reference of feature {feature!r} is broken ({type(e).__name__}: {e}); "
                "re-run sloguard baseline",
            )
    return raw


def _segment_refs(c: Checker, raw: Any, reference: dict[str, dict[str, Any]], path: str, file: Path
                  ) -> dict[str, dict[str, Any]]:
    """A baseline's per-segment drift references: "attr=value" -> feature -> shares on the model's bins."""
    from sloguard.core.stats.segment_refs import segment_reference

    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        c.fail(path, f"{file}: 'segment_references' must map segment keys to feature references")
        return {}
    for key, features in raw.items():
        for feature, d in features.items():
            if feature not in reference:
                continue
            try:
                segment_reference(reference_from_dict(reference[feature]), d)
            except (KeyError, TypeError, ValueError) as e:
                c.fail(path, f"{file}: segment reference {key} of feature {feature!r} does not fit the model's "
                             f"({type(e).__name__}: {e}); re-run sloguard baseline")
    return raw
