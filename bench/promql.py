"""The few PromQL functions the dashboard uses, over the scraper's samples.

deploy/grafana-dashboard.json's panels are built from: a metric's samples over
time (`select`), `rate`, `sum by` / `max by` (`aggregate`), division, and
`histogram_quantile`. Here each is a small function over series: a Series is
{labels: [(time, value), ...]}, one point per scrape.

Differences from Prometheus, kept on purpose:
- rate's window is seconds long, not 1m/5m: a bench scenario lasts seconds. It is
  the increase over the samples inside the window (a counter reset counts from 0,
  as in Prometheus) divided by the time between the window's first and last
  sample, without Prometheus's extrapolation to the window's edges.
- A counter or histogram series missing from the scrapes before its first
  appearance counts as 0 there: prometheus_client makes a labelled child on its
  first use, so its value before that was 0 (Prometheus would start its rate only
  from the second sample it saw, and lose the first increase).
"""

import math
from collections import defaultdict
from collections.abc import Callable, Iterable

from .scrape import Labels, Scrape

Points = list[tuple[float, float]]
Series = dict[Labels, Points]


def select(scrapes: list[Scrape], name: str, counter: bool = True) -> Series:
    """Every series of sample `name`, one point per scrape that has it (counters: zero
    before their first appearance)."""
    found = {labels for scrape in scrapes for (n, labels) in scrape.samples if n == name}
    series: Series = {}
    for labels in found:
        points, seen = [], False
        for scrape in scrapes:
            value = scrape.samples.get((name, labels))
            seen = seen or value is not None
            if value is not None:
                points.append((scrape.at, value))
            elif counter and not seen:
                points.append((scrape.at, 0.0))
        series[labels] = points
    return series


def increase(values: Iterable[float]) -> float:
    """A counter's increase over consecutive samples; a drop is a reset (from 0)."""
    total, previous = 0.0, None
    for value in values:
        if previous is not None:
            total += value - previous if value >= previous else value
        previous = value
    return total


def rate(series: Series, window: float) -> Series:
    """Per-second increase over the last `window` seconds, at each sample with an earlier
    one in the window."""
    out: Series = {}
    for labels, points in series.items():
        rated = []
        for i, (t, _) in enumerate(points):
            inside = [(s, v) for s, v in points[: i + 1] if s >= t - window - 1e-9]
            if len(inside) >= 2:
                rated.append((t, increase(v for _, v in inside) / (t - inside[0][0])))
        out[labels] = rated
    return out


def aggregate(series: Series, by: tuple[str, ...] = (), how: Callable = sum) -> Series:
    """`sum by (labels)` (or `max by`, how=max): series grouped on those labels, combined at
    each time."""
    groups: dict[Labels, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for labels, points in series.items():
        key = frozenset((k, v) for k, v in labels if k in by)
        for t, v in points:
            groups[key][t].append(v)
    return {key: [(t, how(vs)) for t, vs in sorted(at.items())] for key, at in groups.items()}


def divide(numerator: Series, denominator: Series) -> Series:
    """a / b on matching labels and times; NaN where b is 0 (nothing happened: no point)."""
    out: Series = {}
    for labels, points in numerator.items():
        below = dict(denominator.get(labels, []))
        out[labels] = [(t, v / below[t] if below[t] else math.nan) for t, v in points if t in below]
    return out


def quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's bucketQuantile: `buckets` are (upper bound `le`, cumulative count),
    +Inf included. The q-quantile, interpolated linearly inside its bucket (the first
    bucket starts at 0); NaN without observations; the highest finite bound if it falls
    in the +Inf bucket."""
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is not within 0..1")
    buckets = sorted(buckets)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    counts = []  # cumulative counts made monotonic, as Prometheus does for float jitter
    for _, count in buckets:
        counts.append(max(count, counts[-1]) if counts else count)
    total = counts[-1]
    if total == 0:
        return math.nan
    rank = q * total
    b = next(i for i, count in enumerate(counts) if count >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], counts[b]
    if b > 0:
        start = buckets[b - 1][0]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return start + (end - start) * (rank / count)


def histogram_quantile(q: float, buckets: Series) -> Series:
    """histogram_quantile(q, <series with an `le` label>): one series per set of the other
    labels."""
    grouped: dict[Labels, dict[float, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for labels, points in buckets.items():
        le = float(dict(labels)["le"])
        rest = frozenset((k, v) for k, v in labels if k != "le")
        for t, v in points:
            grouped[rest][t].append((le, v))
    return {
        rest: [(t, quantile(q, bs)) for t, bs in sorted(at.items())] for rest, at in grouped.items()
    }
