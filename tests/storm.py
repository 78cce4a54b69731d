"""Many HTTP requests against a real server at once: asyncio + httpx, a bounded number in flight.

`run_storm(url, calls, concurrency=64)` sends every call, never more than
`concurrency` at once (an asyncio.Semaphore, and an httpx pool of as many
connections), and returns each call's outcome with the wall time and the peak
number of requests that were actually in flight. Transport failures (a worker
killed mid-request, a reset) are recorded, not raised.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

TRANSPORT_ERROR = "transport-error"


@dataclass
class Call:
    method: str
    path: str
    json: dict | None = None
    headers: dict | None = None
    tag: Any = None  # the caller's note: which user, which event, why


@dataclass
class Result:
    call: Call
    status: int | None  # None: no HTTP answer (see error)
    body: Any = None  # parsed JSON, else text
    error: str | None = None

    @property
    def kind(self) -> int | str:
        return self.status if self.status is not None else TRANSPORT_ERROR


@dataclass
class Storm:
    results: list[Result]
    wall: float  # seconds for the whole run_storm call: client set-up, every request, close
    peak_in_flight: int
    concurrency: int = 0

    def statuses(self) -> Counter:
        return Counter(result.kind for result in self.results)

    def outcomes(self) -> Counter:
        """What the answers said: their "status" (booked, waitlisted, cancelled, ...),
        or for a problem+json answer the last part of its type (already-booked, ...)."""
        found = Counter()
        for result in self.results:
            body = result.body
            if not isinstance(body, dict):
                continue
            if isinstance(body.get("status"), str):
                found[body["status"]] += 1
            elif isinstance(body.get("type"), str):
                found[body["type"].rsplit(":", 1)[-1]] += 1
        return found

    def errors(self) -> list[Result]:
        """No HTTP answer, or a 5xx."""
        return [r for r in self.results if r.status is None or r.status >= 500]

    def with_status(self, status: int) -> list[Result]:
        return [r for r in self.results if r.status == status]

    def summary(self) -> str:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses().items(), key=str))
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(self.outcomes().items()))
        return (
            f"requests={len(self.results)} statuses={{{statuses}}} outcomes={{{outcomes}}}"
            f" errors={len(self.errors())} wall={self.wall:.2f}s"
            f" peak_in_flight={self.peak_in_flight}/{self.concurrency}"
        )


@dataclass
class _Gauge:
    now: int = 0
    peak: int = 0
    done: int = 0
    results: list = field(default_factory=list)


async def _storm(
    base_url: str,
    calls: list[Call],
    concurrency: int,
    timeout: float,
    on_result: Callable[[Result, int], None] | None,
) -> tuple[list[Result], int]:
    gate = asyncio.Semaphore(concurrency)
    gauge = _Gauge()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=httpx.Timeout(timeout)
    ) as client:

        async def send(call: Call) -> Result:
            async with gate:
                gauge.now += 1
                gauge.peak = max(gauge.peak, gauge.now)
                try:
                    response = await client.request(
                        call.method, call.path, json=call.json, headers=call.headers
                    )
                except httpx.TransportError as error:
                    result = Result(call, None, error=f"{type(error).__name__}: {error}")
                else:
                    try:
                        body = response.json()
                    except ValueError:
                        body = response.text
                    result = Result(call, response.status_code, body)
                finally:
                    gauge.now -= 1
            gauge.done += 1
            if on_result is not None:
                on_result(result, gauge.done)
            return result

        results = await asyncio.gather(*(send(call) for call in calls))
    return list(results), gauge.peak


def run_storm(
    base_url: str,
    calls: list[Call],
    concurrency: int = 64,
    timeout: float = 30.0,
    on_result: Callable[[Result, int], None] | None = None,
) -> Storm:
    """Send `calls` with at most `concurrency` in flight; results come back in call order.

    `on_result(result, answered_so_far)` runs in the event loop as each answer lands.
    """
    started = time.perf_counter()
    results, peak = asyncio.run(_storm(base_url, calls, concurrency, timeout, on_result))
    return Storm(results, time.perf_counter() - started, peak, concurrency)
