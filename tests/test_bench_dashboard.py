"""The bench's dashboard picture: its PromQL helpers against hand-computed values, and its
panels tied to deploy/grafana-dashboard.json's (no server needed)."""

import copy
import json
import math
from types import SimpleNamespace

import pytest

from bench import dashboard_plot
from bench.promql import (
    aggregate,
    divide,
    histogram_quantile,
    increase,
    quantile,
    rate,
    select,
)
from bench.scrape import Scrape, parse

INF = math.inf


def labels(**pairs):
    return frozenset(pairs.items())


# quantile: buckets (le, cumulative count); 10 observations: 2 <= 0.1, 4 in (0.1, 0.5],
# 4 in (0.5, 1].
BUCKETS = [(0.1, 2), (0.5, 6), (1.0, 10), (INF, 10)]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.1, 0.05),  # rank 1 of the first bucket's 2, from 0: 0 + 0.1 * 1/2
        (0.5, 0.4),  # rank 5: 3rd of 4 in (0.1, 0.5]: 0.1 + 0.4 * 3/4
        (0.99, 0.9875),  # rank 9.9: 3.9th of 4 in (0.5, 1]: 0.5 + 0.5 * 3.9/4
        (1.0, 1.0),
    ],
)
def test_quantile_interpolates_inside_its_bucket_like_prometheus(q, expected):
    assert quantile(q, BUCKETS) == pytest.approx(expected)
    assert quantile(q, list(reversed(BUCKETS))) == pytest.approx(expected)  # order-free


def test_quantile_edge_cases():
    # In the +Inf bucket: the highest finite bound.
    assert quantile(0.9, [(1.0, 5), (INF, 10)]) == 1.0
    # No observations, or no +Inf bucket: NaN.
    assert math.isnan(quantile(0.5, [(1.0, 0), (INF, 0)]))
    assert math.isnan(quantile(0.5, [(0.1, 1), (1.0, 2)]))
    # Counts that dip (float jitter between bucket rates) are made monotonic first.
    assert quantile(0.5, [(0.1, 2), (0.5, 1.999), (1.0, 4), (INF, 4)]) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        quantile(1.5, BUCKETS)


def test_increase_counts_a_reset_from_zero():
    assert increase([1, 3, 6, 2, 5]) == 2 + 3 + 2 + 3


def test_rate_is_the_increase_over_the_window_per_second():
    key = labels(outcome="booked")
    series = {key: [(0.0, 0), (0.5, 0), (1.0, 10), (1.5, 20), (2.0, 20), (2.5, 50)]}
    assert rate(series, window=1.0)[key] == [
        # t=0 has no earlier sample in its window: no point
        (0.5, 0.0),  # 0 -> 0 over 0.5 s
        (1.0, 10.0),  # 0, 0, 10 over 1 s
        (1.5, 20.0),  # 0 -> 20
        (2.0, 10.0),  # 10 -> 20
        (2.5, 30.0),  # 20 -> 50
    ]


def _scrape(at: float, **values: float) -> Scrape:
    """One scrape of a histogram `h` over route and method, sample names as keys."""
    samples = {}
    for key, value in values.items():
        route, method, le = key.split("_")
        samples[("h_bucket", labels(route=f"/{route}", method=method, le=le))] = value
    return Scrape(at, samples)


def test_select_fills_a_counter_with_zero_before_its_first_appearance_but_not_a_gauge():
    scrapes = [
        Scrape(0.0, {}),
        Scrape(1.0, {("c_total", labels(type="x")): 3.0}),
        Scrape(2.0, {("c_total", labels(type="x")): 5.0}),
    ]
    assert select(scrapes, "c_total") == {labels(type="x"): [(0.0, 0.0), (1.0, 3.0), (2.0, 5.0)]}
    assert select(scrapes, "c_total", counter=False) == {labels(type="x"): [(1.0, 3.0), (2.0, 5.0)]}


def test_histogram_quantile_of_summed_bucket_rates_by_route():
    """histogram_quantile(0.99, sum by (le, route) (rate(h_bucket[1s]))) by hand."""
    scrapes = [
        _scrape(0.0, **{"a_GET_0.1": 0, "a_GET_0.5": 0, "a_GET_+Inf": 0}),
        # In the first second: 6 GETs and 4 POSTs of /a, all <= 0.1 s.
        _scrape(
            1.0,
            **{"a_GET_0.1": 6, "a_GET_0.5": 6, "a_GET_+Inf": 6}
            | {"a_POST_0.1": 4, "a_POST_0.5": 4, "a_POST_+Inf": 4},
        ),
        # In the next: 10 more GETs, all in (0.1, 0.5].
        _scrape(
            2.0,
            **{"a_GET_0.1": 6, "a_GET_0.5": 16, "a_GET_+Inf": 16}
            | {"a_POST_0.1": 4, "a_POST_0.5": 4, "a_POST_+Inf": 4},
        ),
    ]
    rates = aggregate(rate(select(scrapes, "h_bucket"), 1.0), ("le", "route"))
    assert rates[labels(route="/a", le="0.5")] == [(1.0, 10.0), (2.0, 10.0)]
    p99 = histogram_quantile(0.99, rates)
    assert list(p99) == [labels(route="/a")]
    (t1, at_1), (t2, at_2) = p99[labels(route="/a")]
    assert (t1, t2) == (1.0, 2.0)
    assert at_1 == pytest.approx(0.1 * 9.9 / 10)  # rank 9.9 of 10, all in (0, 0.1]
    assert at_2 == pytest.approx(0.1 + 0.4 * 9.9 / 10)  # all 10 in (0.1, 0.5]


def test_sum_max_and_divide():
    a = {labels(x="1"): [(0.0, 1.0), (1.0, 2.0)], labels(x="2"): [(1.0, 5.0)]}
    assert aggregate(a) == {frozenset(): [(0.0, 1.0), (1.0, 7.0)]}
    assert aggregate(a, ("x",), max)[labels(x="2")] == [(1.0, 5.0)]
    ratio = divide({frozenset(): [(0.0, 6.0), (1.0, 0.0)]}, {frozenset(): [(0.0, 2.0), (1.0, 0)]})
    assert ratio[frozenset()][0] == (0.0, 3.0)
    assert math.isnan(ratio[frozenset()][1][1])  # no batches in the window: no mean


def test_a_scrape_is_parsed_by_prometheus_clients_parser():
    text = (
        "# TYPE booking_outcomes counter\n"
        'booking_outcomes_total{outcome="booked"} 3.0\n'
        "# TYPE booking_batch_size histogram\n"
        'booking_batch_size_bucket{le="1.0"} 1.0\n'
        'booking_batch_size_bucket{le="+Inf"} 2.0\n'
        "booking_batch_size_count 2.0\n"
        "booking_batch_size_sum 5.0\n"
    )
    samples = parse(text, 7.0).samples
    assert samples[("booking_outcomes_total", labels(outcome="booked"))] == 3.0
    assert samples[("booking_batch_size_bucket", labels(le="+Inf"))] == 2.0
    assert samples[("booking_batch_size_sum", frozenset())] == 5.0


def test_every_dashboard_panel_has_a_plotted_counterpart():
    """Each query of deploy/grafana-dashboard.json is computed for dashboard.png, by its
    exact text: a panel added, or a query changed, without its counterpart fails here."""
    assert len(dashboard_plot.panels()) >= 10
    assert dashboard_plot.unmatched() == []
    used = {t["expr"] for p in dashboard_plot.panels() for t in p["targets"]}
    assert set(dashboard_plot.COUNTERPARTS) == used, "a counterpart of no panel"


def test_a_panel_without_a_counterpart_is_found(tmp_path):
    dashboard = json.loads(dashboard_plot.DASHBOARD.read_text())
    added = copy.deepcopy(dashboard["panels"][0])
    added["title"] = "Something new"
    added["targets"][0]["expr"] = "sum(rate(booking_something_total[5m]))"
    added["gridPos"]["y"] = 100
    dashboard["panels"].append(added)
    path = tmp_path / "dashboard.json"
    path.write_text(json.dumps(dashboard))
    assert dashboard_plot.unmatched(path) == [
        *dashboard_plot.unmatched(),
        ("Something new", "sum(rate(booking_something_total[5m]))"),
    ]


def test_the_picture_draws_from_scrapes(tmp_path):
    pytest.importorskip("matplotlib")

    run = SimpleNamespace(  # as a bench.dashboard.DashboardRun
        interval=1.0,
        setting="",
        phases=[("on sale", 1.0, 2.0)],
        scrapes=[
            Scrape(float(t), {("booking_outcomes_total", labels(outcome="booked")): 10.0 * t})
            for t in range(4)
        ],
    )
    path = tmp_path / "dashboard.png"
    dashboard_plot.plot(run, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
