"""dashboard.png: deploy/grafana-dashboard.json's panels, drawn from the dashboard scenario's
scrapes.

The panels (titles, layout, units, queries, legends) are read from the dashboard
itself; each query is computed by its counterpart in COUNTERPARTS, keyed by the
query's exact text. A query without a counterpart is drawn as a panel saying so,
and tests/test_bench_dashboard.py fails: the picture and the dashboard cannot
drift apart silently. Rates use WINDOW_S instead of the dashboard's 1m/5m.
"""

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .promql import Series, aggregate, divide, histogram_quantile, rate, select
from .scrape import Scrape

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana-dashboard.json"
WINDOW_S = 2.0
PHASE_COLORS = ("tab:orange", "tab:purple", "tab:green")


@dataclass(frozen=True)
class Counterpart:
    compute: Callable[[list[Scrape], float], Series]  # (scrapes, rate window in s)
    quantity: str  # the y axis: "<quantity> / s", "<quantity>, ms", ...


def _rate_by(name: str, *by: str, quantity: str) -> Counterpart:
    return Counterpart(lambda s, w: aggregate(rate(select(s, name), w), by), quantity)


def _p99(name: str, *by: str, quantity: str) -> Counterpart:
    return Counterpart(
        lambda s, w: histogram_quantile(0.99, aggregate(rate(select(s, name), w), ("le", *by))),
        quantity,
    )


def _gauge_max_by(name: str, *by: str, quantity: str) -> Counterpart:
    return Counterpart(lambda s, w: aggregate(select(s, name, counter=False), by, max), quantity)


def _mean_batch(scrapes: list[Scrape], window: float) -> Series:
    return divide(
        aggregate(rate(select(scrapes, "booking_batch_size_sum"), window)),
        aggregate(rate(select(scrapes, "booking_batch_size_count"), window)),
    )


COUNTERPARTS: dict[str, Counterpart] = {
    "sum by (route) (rate(booking_http_request_duration_seconds_count[1m]))": _rate_by(
        "booking_http_request_duration_seconds_count", "route", quantity="requests"
    ),
    (
        "histogram_quantile(0.99, sum by (le, route)"
        " (rate(booking_http_request_duration_seconds_bucket[5m])))"
    ): _p99("booking_http_request_duration_seconds_bucket", "route", quantity="p99 latency"),
    "sum by (outcome) (rate(booking_outcomes_total[1m]))": _rate_by(
        "booking_outcomes_total", "outcome", quantity="outcomes"
    ),
    "sum by (type) (rate(booking_refusals_total[5m]))": _rate_by(
        "booking_refusals_total", "type", quantity="refusals"
    ),
    "sum by (cause) (rate(booking_unavailable_total[5m]))": _rate_by(
        "booking_unavailable_total", "cause", quantity="503 answers"
    ),
    "histogram_quantile(0.99, sum by (le) (rate(booking_lock_wait_seconds_bucket[5m])))": _p99(
        "booking_lock_wait_seconds_bucket", quantity="p99"
    ),
    "histogram_quantile(0.99, sum by (le) (rate(booking_lock_hold_seconds_bucket[5m])))": _p99(
        "booking_lock_hold_seconds_bucket", quantity="p99"
    ),
    "sum(rate(booking_batch_size_sum[5m])) / sum(rate(booking_batch_size_count[5m]))": (
        Counterpart(_mean_batch, "changes per batch")
    ),
    "sum(rate(booking_waitlist_copy_reloads_total[5m]))": _rate_by(
        "booking_waitlist_copy_reloads_total", quantity="reloads"
    ),
    "max by (result) (booking_webhook_deliveries)": _gauge_max_by(
        "booking_webhook_deliveries", "result", quantity="attempts so far"
    ),
    "max(booking_journal_oldest_undelivered_seconds)": _gauge_max_by(
        "booking_journal_oldest_undelivered_seconds", quantity="age"
    ),
}


def panels(dashboard: Path = DASHBOARD) -> list[dict]:
    """The dashboard's panels in reading order (top to bottom, left to right)."""
    found = json.loads(dashboard.read_text())["panels"]
    return sorted(found, key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))


def unmatched(dashboard: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, query) of every query in the dashboard that has no counterpart here."""
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard)
        for target in panel["targets"]
        if target["expr"] not in COUNTERPARTS
    ]


def _axis_label(unit: str, quantity: str, scale_ms: bool) -> str:
    if unit in ("reqps", "ops"):
        return f"{quantity} / s"
    if unit == "s":
        return f"{quantity}, {'ms' if scale_ms else 's'}"
    return quantity


def _legend(labels, legend_format: str) -> str:
    """The target's legendFormat, else the label values (a route's converters shortened:
    <int(min=1, ...):eventId> to <eventId>)."""
    if legend_format:
        return legend_format
    values = (re.sub(r"<[^<>]*:(\w+)>", r"<\1>", v) for _, v in sorted(labels))
    return ", ".join(values) or "value"


def _broken(points, start: float, factor: float, gap: float) -> tuple[list, list]:
    """x and y for plot(), with a NaN where scrapes are missing, so no line spans a gap."""
    xs: list[float] = []
    ys: list[float] = []
    for t, v in points:
        if xs and t - start - xs[-1] > gap:
            xs.append(math.nan)
            ys.append(math.nan)
        xs.append(t - start)
        ys.append(v * factor)
    return xs, ys


def _peak(points) -> float:
    return max((v for _, v in points if not math.isnan(v)), default=0.0)


def _draw_panel(ax, panel: dict, scrapes: list[Scrape], start: float, gap: float) -> None:
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    lines, quantity, missing = [], "", []
    for target in panel["targets"]:
        counterpart = COUNTERPARTS.get(target["expr"])
        if counterpart is None:
            missing.append(target["expr"])
            continue
        quantity = counterpart.quantity
        for labels, points in counterpart.compute(scrapes, WINDOW_S).items():
            lines.append((_legend(labels, target.get("legendFormat", "")), points))
    # Highest first; series that stay at 0 (or have no value) are only counted.
    drawn = sorted((line for line in lines if _peak(line[1]) > 0), key=lambda x: -_peak(x[1]))
    scale_ms = unit == "s" and bool(drawn) and max(_peak(p) for _, p in drawn) < 1
    factor = 1000 if scale_ms else 1
    first_of: dict[tuple, str] = {}
    for label, points in drawn:
        # A series equal to one drawn before (each cancel's promotion) is dashed on top.
        same = first_of.setdefault(tuple(points), label)
        ax.plot(
            *_broken(points, start, factor, gap), linewidth=1.6,
            label=label if same == label else f"{label} (= {same})",
            linestyle="-" if same == label else (0, (4, 3)),
        )  # fmt: skip
    ax.set_title(panel["title"], fontsize=10)
    ax.set_ylabel(_axis_label(unit, quantity, scale_ms), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    if missing:
        note = "no counterpart in bench/dashboard_plot.py for\n" + "\n".join(missing)
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", color="red")
    elif not drawn:
        note = "none during the run" + (f" ({len(lines)} series at 0)" if lines else "")
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", fontsize=9)
    if drawn:
        hidden = len(lines) - len(drawn)
        ax.legend(
            fontsize=7, loc="best", ncol=2 if len(drawn) > 3 else 1,
            title=f"+ {hidden} series at 0" if hidden else None, title_fontsize=7,
        )  # fmt: skip


def plot(run, path: Path, dashboard: Path = DASHBOARD) -> None:
    """`run`: a dashboard.DashboardRun (scrapes, phases, interval, setting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = panels(dashboard)
    columns = 2
    rows = math.ceil(len(found) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(15, 3.1 * rows + 1), sharex=True, layout="constrained"
    )
    axes = list(axes.flat)
    start = run.scrapes[0].at if run.scrapes else 0.0
    for i, (ax, panel) in enumerate(zip(axes, found, strict=False)):
        for (name, a, b), color in zip(run.phases, PHASE_COLORS, strict=False):
            ax.axvspan(a - start, b - start, color=color, alpha=0.08, lw=0)
            if i < columns:
                ax.text(
                    (a + b) / 2 - start, 1.0, name, transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=7, color=color,
                )  # fmt: skip
        _draw_panel(ax, panel, run.scrapes, start, gap=2.5 * run.interval)
    for ax in axes[len(found) :]:
        ax.set_visible(False)
    for ax in axes[-columns:]:
        ax.set_xlabel("seconds since the first scrape", fontsize=8)
    setting = f"{run.setting}; " if run.setting else ""
    fig.suptitle(
        f"deploy/grafana-dashboard.json's {len(found)} panels over the bench's dashboard"
        f" scenario (hot event on sale, cancels, webhook worker; python -m bench.dashboard)"
        f"\n{setting}/metrics scraped every {run.interval} s, rates over"
        f" {WINDOW_S:g} s windows instead of 1m/5m",
        fontsize=11,
    )
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)
