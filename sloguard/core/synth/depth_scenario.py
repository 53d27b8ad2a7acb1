"""The `ml-depth` scenario: three ML failures that labels, single attributes or marginals miss.

A card-fraud model (`examples/ml-depth.yaml`) scores transactions; `score` is a monotone but
miscalibrated map of the true fraud probability p (score = p ** 0.6), so estimated quality must
calibrate it on the baseline's labels. Labels (chargebacks) normally arrive 10 minutes late.
Three incidents, in event time:

* **score_shift** (quality): 40 % of transactions come from a new population scored just above
  the threshold, where few are fraud (p in [0.32, 0.36]); precision falls from ~0.48 to ~0.37. The
  chargeback feed stalls at the same time: the labels of these predictions come 3 days later,
  after the recording ends (`labels_withheld` in the manifest). Only `estimated_precision` can page.
* **intersection_gap** (fairness): the model misses every fraud of old customers in the eu and of
  young ones in the us. Each region and each age band keeps the same average true positive rate,
  so a per-attribute gap stays flat; the region x age_band groups' equalized odds do not. The
  missed frauds' scores no longer mean what the calibration learnt: once their labels are in, the
  estimate's error (`estimation_error`: estimated ~0.47 against realised ~0.29 precision) pages too.
* **correlation_flip** (drift): amount and merchant risk, normally correlated (rho 0.8 through a
  Gaussian copula), become anti-correlated. Each marginal is unchanged, so per-feature drift stays
  quiet; the PCA reconstruction error of the pair triples.

`generate_depth` draws it with numpy from a seed (same seed, same bytes); `healthy=True` leaves the
incidents out (history for `sloguard baseline`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from scipy.special import ndtr

from sloguard.core.synth.contract import DEFAULT_START, FILES, Incident

SCENARIO = "ml-depth"
MODEL = "fraud"
DEFAULT_DURATION_S = 10 * 3600.0
DEFAULT_RATE = 3.0  # predictions per second
LABEL_DELAY_S = 600.0
WITHHELD_S = 3 * 86_400.0  # the stalled chargeback feed's delay
REGIONS = np.array(["eu", "us"], dtype=object)
AGE_BANDS = np.array(["18-34", "65+"], dtype=object)
RHO = 0.8
_HOUR = 3600.0
MIN_DURATION_S = 8.5 * _HOUR  # the last incident's end


def incidents(start: float) -> list[Incident]:
    """The three incidents at their offsets from `start` (the layout needs 10 h)."""
    at = [(1.5, 3.0), (4.0, 5.5), (7.0, 8.5)]
    (a0, a1), (b0, b1), (c0, c1) = ((start + x * _HOUR, start + y * _HOUR) for x, y in at)
    return [
        Incident("score_shift", "score_shift", MODEL, "quality", ("fraud-estimated-precision",), "fast-burn", {},
                 a0, a1, 30 * 60.0, "a new population scored just above the threshold; its labels are 3 days late"),
        Incident("intersection_gap", "intersection_gap", MODEL, "fairness",
                 ("fraud-equalized-odds", "fraud-estimate-error"), "fast-burn",
                 {}, b0, b1, 60 * 60.0, "frauds of eu 65+ and us 18-34 customers missed; each attribute alone "
                 "keeps the same average TPR", group={"region&age_band": "eu&65+"}),
        Incident("correlation_flip", "correlation_flip", MODEL, "drift", ("fraud-joint-drift",), "fast-burn", {},
                 c0, c1, 30 * 60.0, "amount and merchant_risk anti-correlated; both marginals unchanged",
                 feature="amount,merchant_risk"),
    ]


def generate_depth(out_dir: Path, seed: int = 7, start: float = DEFAULT_START,
                   duration_s: float = DEFAULT_DURATION_S, rate: float = DEFAULT_RATE, healthy: bool = False
                   ) -> dict[str, Path]:
    """Write inference.jsonl, labels.jsonl, features.jsonl (empty) and manifest.json into `out_dir`."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * rate)
    ts = start + np.sort(rng.random(n)) * duration_s
    region = rng.integers(0, 2, n)
    age = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-rng.normal(-2.3, 1.4, n)))
    rho = np.full(n, RHO)
    planned = [] if healthy or duration_s < MIN_DURATION_S else incidents(start)
    withheld = np.zeros(n, bool)
    for inc in planned:
        during = (ts >= inc.start) & (ts < inc.end)
        if inc.kind == "score_shift":
            shifted = during & (rng.random(n) < 0.4)
            p = np.where(shifted, rng.uniform(0.32, 0.36, n), p)
            withheld |= during
        elif inc.kind == "correlation_flip":
            rho = np.where(during, -RHO, rho)
    fraud = rng.random(n) < p
    score = p**0.6
    for inc in planned:
        if inc.kind == "intersection_gap":  # eu & 65+ and us & 18-34: a diagonal of the 2 x 2 groups
            missed = (ts >= inc.start) & (ts < inc.end) & fraud & (region != age)
            score = np.where(missed, score * 0.5, score)
    z1 = rng.normal(size=n)
    z2 = rho * z1 + np.sqrt(1 - rho**2) * rng.normal(size=n)
    amount = np.round(np.exp(3.5 + 0.8 * z1), 2)
    risk = np.round(ndtr(z2), 4)
    inference = _inference_lines(seed, ts, region, age, score, amount, risk)
    label_ts = ts + np.where(withheld, WITHHELD_S, LABEL_DELAY_S)
    arrived = np.flatnonzero(label_ts <= start + duration_s)
    labels = [orjson.dumps({"id": _id(seed, i), "model": MODEL, "label": int(fraud[i]), "ts": float(label_ts[i])})
              for i in arrived[np.argsort(label_ts[arrived], kind="stable")].tolist()]
    manifest = {
        "scenario": SCENARIO, "seed": seed, "events": n, "start": start, "end": start + duration_s,
        "incidents": [asdict(i) for i in planned],
        "labels_withheld": [{"from": i.start, "to": i.end, "delay_s": WITHHELD_S} for i in planned
                            if i.kind == "score_shift"],
        "counts": {"inference": len(inference), "labels": len(labels), "features": 0},
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f for k, f in FILES.items()}
    for kind, lines in (("inference", inference), ("labels", labels), ("features", [])):
        paths[kind].write_bytes(b"".join(line + b"\n" for line in lines))
    paths["manifest"].write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return paths


def _id(seed: int, i: int) -> str:
    return f"d{seed}-{i}"


def _inference_lines(seed: int, ts: np.ndarray, region: np.ndarray, age: np.ndarray, score: np.ndarray,
                     amount: np.ndarray, risk: np.ndarray) -> list[bytes]:
    score = np.round(score, 4)
    rows: list[dict[str, Any]] = [
        {"id": _id(seed, i), "model": MODEL, "version": "v1", "ts": t, "status": "ok", "latency_ms": 20.0,
         "prediction": int(s >= 0.5), "score": s, "segment": {"region": r, "age_band": a},
         "features": {"amount": am, "merchant_risk": mr}, "feature_ts": t - 1.0}
        for i, (t, s, r, a, am, mr) in enumerate(zip(ts.tolist(), score.tolist(), REGIONS[region].tolist(),
                                                     AGE_BANDS[age].tolist(), amount.tolist(), risk.tolist(),
                                                     strict=True))
    ]
    return [orjson.dumps(r) for r in rows]
