"""Throughput, latency percentiles and error counts of a run."""

import math
from collections import Counter
from collections.abc import Iterable

from .load import Response


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_ms(latencies_s: Iterable[float]) -> dict:
    values = sorted(x * 1000 for x in latencies_s)
    return {
        "p50_ms": round(percentile(values, 50), 2),
        "p90_ms": round(percentile(values, 90), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(values[-1], 2) if values else 0.0,
        "mean_ms": round(sum(values) / len(values), 2) if values else 0.0,
    }


def summarize(responses: list[Response], wall: float, expected: Iterable[int]) -> dict:
    """Requests, requests/s over `wall`, latency percentiles, and what was unexpected.

    An error is an answer with a status not in `expected`, or no answer at all.
    """
    expected = set(expected)
    statuses = Counter(r.status if r.status is not None else "transport" for r in responses)
    errors = [r for r in responses if r.status not in expected]
    return {
        "requests": len(responses),
        "wall_s": round(wall, 3),
        "rps": round(len(responses) / wall, 1) if wall > 0 else 0.0,
        **latency_ms(r.latency for r in responses),
        "errors": len(errors),
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "error_samples": [
            f"{r.request.method} {r.request.path} -> {r.status} {r.error or r.body}"[:300]
            for r in errors[:5]
        ],
    }
