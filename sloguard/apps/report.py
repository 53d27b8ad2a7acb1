"""The HTML report of one or more replays: one self-contained file, plotly.js inlined once, no CDN.

Per model: budget left per dimension and SLO and the health score for each run (config), then per
SLO one figure per run, side by side: budget burn-down per key, burn rates per window against the
alert rules' thresholds (a menu picks the key), the alert timeline (firing spans by severity) and,
for drift and fairness SLOs, the per-slice statistic against its objective. Known incidents are
shaded bands. Series are downsampled to a few hundred points (sloguard/core/backtest/report_series.py).
Plotly is imported here only, when a report is written.
"""

from __future__ import annotations

import html
import math
import time
from pathlib import Path
from typing import Any

import orjson

from sloguard.apps.runs import read_jsonl, summarize
from sloguard.core.backtest.alert_quality import Incident, Span, key_label, segment_label
from sloguard.core.backtest.report_series import Grid, RunSeries, is_segment
from sloguard.core.stats.budget import budget_text, health_score

SHOWN_KEYS = 5  # per SLO and run: the whole model and the most burnt segments
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
SEVERITY_COLOURS = {"page": "#d62728", "ticket": "#ff9f1c"}
DASHES = ("solid", "dot", "dash", "longdash", "dashdot", "longdashdot")


def _date(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _load_meta(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "slos.json"
    return orjson.loads(path.read_bytes()) if path.exists() else None


def write_report(
    runs: list[tuple[str, Path]],
    incidents: list[Incident],
    out: Path,
    *,
    results: dict[str, dict[str, Any]] | None = None,
    metas: dict[str, dict[str, Any]] | None = None,
    max_points: int = 300,
) -> Path:
    """Write the report of `runs` ((label, replay output dir), compared side by side) to `out`."""
    results = results or {label: summarize(d, incidents) for label, d in runs}
    metas = {label: (metas or {}).get(label) or _load_meta(d) for label, d in runs}
    starts = [r["start"] for r in results.values() if r["start"] is not None]
    ends = [r["end"] for r in results.values() if r["end"]]
    t0, t1 = (min(starts), max(ends)) if starts and ends else (0.0, 60.0)
    tick = min((m or {}).get("evaluation_interval_s", 60) for m in metas.values())
    grid = Grid.over(t0, t1, tick, max_points)
    series: dict[str, RunSeries] = {}
    for label, d in runs:
        series[label] = RunSeries(grid)
        for event in read_jsonl(d / "budget.jsonl"):
            series[label].add(event)
    page = _Page(runs, incidents, results, metas, series, grid)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page.render(), encoding="utf-8")
    return out


class _Page:
    def __init__(self, runs, incidents, results, metas, series, grid) -> None:
        self.labels = [label for label, _ in runs]
        self.dirs = dict(runs)
        self.incidents = incidents
        self.results = results
        self.metas = metas
        self.series = series
        self.grid = grid
        self.figures = 0

    def render(self) -> str:
        from plotly.offline import get_plotlyjs

        models = sorted({m for s in self.series.values() for m in s.models()})
        body = [
            "<h1>sloguard report</h1>",
            f"<p class=sub>{_date(self.grid.t0)} to {_date(self.grid.t0 + self.grid.step_s * (self.grid.n - 1))} "
            f"UTC; {len(self.labels)} run(s): "
            + ", ".join(f"<b>{html.escape(lb)}</b> ({html.escape(str(self.dirs[lb]))})" for lb in self.labels)
            + f"; {len(self.incidents)} known incident(s) shaded grey. Series are downsampled to "
            f"{self.grid.step_s / 60:g} min buckets (budget: minimum, burn rate: maximum).</p>",
            self._ranking(),
        ]
        for model in models:
            labels = [lb for lb in self.labels if model in self.series[lb].models()]  # runs of other models: none
            body += [f"<h2>model {html.escape(model)}</h2>", self._overview(model, labels)]
            slos = sorted({s for r in self.series.values() for s in r.slos(model)})
            for slo in slos:
                body.append(f"<h3>{html.escape(slo)}</h3><div class=row style='--n:{len(labels)}'>")
                for label in labels:
                    rs = self.series[label]
                    if slo in rs.slos(model):
                        body.append(
                            f"<div class=cell><div class=cap>{html.escape(label)}</div>"
                            f"{self._figure(label, model, slo)}</div>"
                        )
                    else:
                        body.append(f"<div class=cell><div class=cap>{html.escape(label)}: no such SLO</div></div>")
                body.append("</div>")
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>sloguard report</title>"
            f"<style>{_CSS}</style><script>{get_plotlyjs()}</script></head>"
            f"<body data-figures='{self.figures}'>" + "\n".join(body) + "</body></html>"
        )

    def _ranking(self) -> str:
        from sloguard.core.backtest.alert_quality import rank_key

        order = sorted(self.labels, key=lambda lb: rank_key(self.results[lb]["score"]))
        rows = [
            "<tr><th>rank</th><th>config</th><th>pages</th><th>tickets</th><th>precision</th><th>recall</th>"
            "<th>mean detection</th><th>mean reset</th></tr>"
        ]
        for n, lb in enumerate(order, 1):
            s = self.results[lb]["score"]
            rows.append(
                f"<tr><td>{n}</td><td>{html.escape(lb)}</td><td>{s.pages}</td><td>{s.tickets}</td>"
                f"<td>{_pct(s.precision)}</td><td>{_pct(s.recall)}</td><td>{_mins(s.detection_s)}</td>"
                f"<td>{_mins(s.reset_s)}</td></tr>"
            )
        out = "<h2>alerting</h2><table>" + "".join(rows) + "</table>"
        if self.incidents:
            head = "".join(f"<th>{html.escape(lb)}: detected after / reset</th>" for lb in self.labels)
            rows = [f"<tr><th>incident</th><th>model</th><th>from</th><th>to</th>{head}</tr>"]
            scored = {lb: {r.incident: r for r in self.results[lb]["score"].incidents} for lb in self.labels}
            for inc in self.incidents:
                cells = ""
                for lb in self.labels:
                    r = scored[lb].get(inc)  # None: the run has no such model
                    cells += (
                        "<td>-</td>"
                        if r is None
                        else "<td class=bad>missed</td>"
                        if not r.pages
                        else f"<td>{_mins(r.detection_s)} / {'still firing' if r.still_firing else _mins(r.reset_s)}"
                        f" ({r.pages} pages)</td>"
                    )
                rows.append(
                    f"<tr><td>{html.escape(inc.name)}</td><td>{html.escape(inc.model)}</td>"
                    f"<td>{_date(inc.start)[11:16]}</td><td>{_date(inc.end)[11:16]}</td>{cells}</tr>"
                )
            out += "<table>" + "".join(rows) + "</table>"
        return out

    def _overview(self, model: str, labels: list[str]) -> str:
        head = "".join(f"<th>{html.escape(lb)}</th>" for lb in labels)
        rows = [f"<tr><th>dimension / SLO</th>{head}</tr>"]
        health: dict[str, dict[str, Any]] = {}
        for lb in labels:
            rs = self.series[lb]
            whole = {k: rs.final_budget(k) for k in rs.keys if k[0] == model and not is_segment(k)}
            health[lb] = rs.health.get(model) or health_score(
                [(rs.dimension[k[:2]], b) for k, b in whole.items() if b is not None], {}
            )
        rows.append(
            "<tr><td><b>health score</b></td>"
            + "".join(f"<td>{_budget_cell(health[lb].get('score'))}</td>" for lb in labels)
            + "</tr>"
        )
        dims = sorted({d for h in health.values() for d in h.get("dimensions", {})})
        for dim in dims:
            rows.append(
                f"<tr><td><b>{html.escape(dim)}</b></td>"
                + "".join(f"<td>{_budget_cell(health[lb].get('dimensions', {}).get(dim))}</td>" for lb in labels)
                + "</tr>"
            )
            slos = sorted({s for rs in self.series.values() for s in rs.slos(model) if rs.dimension[(model, s)] == dim})
            for slo in slos:
                cells = ""
                for lb in labels:
                    rs = self.series[lb]
                    keys = rs.keys_of(model, slo)
                    if not keys:
                        cells += "<td>-</td>"
                        continue
                    whole = rs.final_budget(keys[0]) if not is_segment(keys[0]) else None
                    worst = min(keys, key=lambda k: rs.final_budget(k) if rs.final_budget(k) is not None else 2)
                    stats = [k for k in self.results[lb]["keys"] if k.key[:2] == (model, slo)]
                    pages, tickets = sum(k.pages for k in stats), sum(k.tickets for k in stats)
                    cells += (
                        f"<td>{_budget_cell(whole)} <span class=sub>worst {html.escape(segment_label(worst))} "
                        f"{_budget_pct(rs.final_budget(worst))}; {pages} pages, {tickets} tickets</span></td>"
                    )
                rows.append(f"<tr><td>&nbsp;&nbsp;{html.escape(slo)}</td>{cells}</tr>")
        return (
            "<p class=sub>budget left at the end (whole model), per dimension its worst SLO</p><table>"
            + "".join(rows)
            + "</table>"
        )

    def _figure(self, label: str, model: str, slo: str) -> str:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        rs, grid = self.series[label], self.grid
        dimension = rs.dimension[(model, slo)]
        keys = rs.keys_of(model, slo)[:SHOWN_KEYS]
        values = [k for k in keys if rs.keys[k].value is not None and any(v is not None for v in rs.keys[k].value)]
        with_value = dimension in ("drift", "fairness") and bool(values)
        titles = ["budget left %", "burn rate", "alerts"] + (["statistic"] if with_value else [])
        rows = len(titles)
        fig = make_subplots(
            rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=[0.28, 0.28, 0.26, 0.18][:rows]
        )
        for r, title in enumerate(titles, 1):
            fig.update_yaxes(title_text=title, title_font_size=10, row=r, col=1)
        x = {"x0": _date(grid.t0), "dx": grid.step_s * 1000}
        for j, k in enumerate(keys):
            budget = [None if b is None else round(100 * b, 2) for b in rs.keys[k].budget]
            fig.add_trace(
                go.Scatter(
                    y=budget,
                    name=segment_label(k),
                    legendgroup=segment_label(k),
                    mode="lines",
                    line={"color": COLOURS[j % len(COLOURS)]},
                    **x,
                ),
                row=1,
                col=1,
            )
        burn_traces: list[list[int]] = []
        for j, k in enumerate(keys):
            mine = []
            for w, (window, burn) in enumerate(sorted(rs.keys[k].burn.items(), key=lambda wb: _seconds(wb[0]))):
                mine.append(len(fig.data))
                fig.add_trace(
                    go.Scatter(
                        y=burn,
                        name=f"burn {window}",
                        legendgroup=f"burn {window}",
                        mode="lines",
                        visible=j == 0,
                        showlegend=j == 0,
                        **x,
                        line={"color": COLOURS[j % len(COLOURS)], "dash": DASHES[w % len(DASHES)], "width": 1.2},
                    ),
                    row=2,
                    col=1,
                )
            burn_traces.append(mine)
        ends = [_date(grid.t0), _date(grid.t0 + grid.step_s * (grid.n - 1))]
        for rule in ((self.metas.get(label) or {}).get("slos", {}).get(slo) or {}).get("rules", []):
            # a trace, not add_hline: its label would be placed at 10^y on a log axis
            fig.add_trace(
                go.Scatter(
                    x=ends,
                    y=[rule["burn_rate"]] * 2,
                    mode="lines",
                    name=f"{rule['name']} >= {rule['burn_rate']:g} ({' & '.join(rule['windows'])})",
                    line={"dash": "dash", "width": 1, "color": SEVERITY_COLOURS.get(rule["severity"], "#555")},
                ),
                row=2,
                col=1,
            )
        self._timeline(fig, label, model, slo)
        if with_value:
            for k in values:
                j = keys.index(k)
                fig.add_trace(
                    go.Scatter(
                        y=rs.keys[k].value,
                        name=f"{segment_label(k)} value",
                        mode="lines",
                        legendgroup=segment_label(k),
                        showlegend=False,
                        connectgaps=True,
                        line={"color": COLOURS[j % len(COLOURS)]},
                        **x,
                    ),
                    row=4,
                    col=1,
                )
            fig.add_hline(
                y=rs.objective[(model, slo)],
                row=4,
                col=1,
                line={"dash": "dash", "color": "#555"},
                annotation_text=f"objective {rs.objective[(model, slo)]:g}",
                annotation_font_size=9,
            )
        for inc in self.incidents:
            if inc.model == model:
                fig.add_shape(
                    type="rect",
                    xref="x",
                    yref="paper",
                    x0=_date(inc.start),
                    x1=_date(inc.end),
                    y0=0,
                    y1=1,
                    fillcolor="#888",
                    opacity=0.15,
                    line_width=0,
                    layer="below",
                )
                fig.add_annotation(
                    x=_date(inc.start),
                    y=1,
                    xref="x",
                    yref="paper",
                    text=inc.name,
                    showarrow=False,
                    xanchor="left",
                    yanchor="bottom",
                    font={"size": 8, "color": "#555"},
                    textangle=-20,
                )
        if len(keys) > 1:
            buttons = []
            for j, k in enumerate(keys):
                visible = [True] * len(fig.data)
                for jj, ids in enumerate(burn_traces):
                    for i in ids:
                        visible[i] = jj == j
                buttons.append(
                    {"label": f"burn: {segment_label(k)}", "method": "restyle", "args": [{"visible": visible}]}
                )
            fig.update_layout(
                updatemenus=[
                    {
                        "buttons": buttons,
                        "x": 1.0,
                        "xanchor": "right",
                        "y": 1.08,
                        "yanchor": "bottom",
                        "font": {"size": 10},
                    }
                ]
            )
        fig.update_layout(
            height=170 * rows + 160,
            margin={"l": 50, "r": 10, "t": 60, "b": 30},
            template="plotly_white",
            legend={"font": {"size": 9}, "orientation": "h", "y": -0.04, "yanchor": "top"},
            title={"text": f"{slo} [{dimension}]", "font": {"size": 13}},
        )
        low = min((rs.keys[k].min_budget for k in keys), default=0.0)
        if low < -1:  # an overspent budget can read -4000 %: clip so the healthy keys stay readable
            fig.update_yaxes(range=[-105, 105], title_text="budget left % (clipped)", row=1, col=1)
        peak = max((rs.keys[k].peak_burn for k in keys), default=1.0)
        # log scale: thresholds of 1, 6 and 14.4 stay readable under spikes of several hundred
        fig.update_yaxes(type="log", dtick=1, range=[-1, math.log10(max(peak, 20.0) * 1.5)], row=2, col=1)
        fig.update_yaxes(tickfont_size=8, automargin=True, row=3, col=1)
        fig.update_xaxes(range=[_date(grid.t0), _date(grid.t0 + grid.step_s * (grid.n - 1))])
        self.figures += 1
        return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})

    def _timeline(self, fig: Any, label: str, model: str, slo: str) -> None:
        import plotly.graph_objects as go

        spans: list[Span] = [s for s in self.results[label]["spans"] if s.key[:2] == (model, slo)]
        end = self.results[label]["end"] or 0.0
        for severity in ("page", "ticket"):
            xs: list[Any] = []
            ys: list[Any] = []
            text: list[Any] = []
            for s in spans:
                if (s.severity == "page") == (severity == "page"):
                    row = f"{segment_label(s.key)} {s.rule}"
                    xs += [_date(s.start), _date(s.end_or(end)), None]
                    ys += [row, row, None]
                    text += [key_label(s.key) + " " + s.rule] * 2 + [None]
            if xs:
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        text=text,
                        mode="lines",
                        name=f"{severity}s firing",
                        line={"color": SEVERITY_COLOURS[severity], "width": 6},
                        hovertemplate="%{text}<extra></extra>",
                    ),
                    row=3,
                    col=1,
                )


def _seconds(window: str) -> float:
    from sloguard.core.spec.timeutil import parse_duration

    try:
        return float(parse_duration(window))
    except Exception:
        return 0.0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _budget_pct(b: float | None) -> str:
    return _pct(b) if b is None or b > 0 else budget_text(b)


def _mins(x: float | None) -> str:
    return "-" if x is None else f"{x / 60:.1f} min"


def _budget_cell(b: float | None) -> str:
    cls = "na" if b is None else "ok" if b > 0.5 else "warn" if b > 0 else "bad"
    return f"<span class='b {cls}'>{_budget_pct(b)}</span>"


_CSS = """
body{font:13px system-ui,sans-serif;margin:16px;color:#222}
h1{margin:0 0 4px}h2{margin:24px 0 6px;border-bottom:1px solid #ddd}h3{margin:14px 0 4px;font-size:14px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
.sub{color:#666;font-size:12px}.b{font-weight:600;padding:1px 5px;border-radius:3px}
.ok{background:#d9f2d9}.warn{background:#ffe8b3}.bad{background:#f8c9c9}.na{background:#eee}
.row{display:grid;grid-template-columns:repeat(var(--n),minmax(0,1fr));gap:10px}
.cell{min-width:0}.cap{font-weight:600;color:#444}
"""
