"""The load generator: asyncio + aiohttp, a fixed number of requests in flight.

`run(base_url, work, concurrency)` starts `concurrency` workers that take the
next item of `work` as soon as they finish one, so exactly that many requests
are in flight until the work runs out. An item is a Request, or a tuple of
Requests one worker sends one after another (cancel, then book again). Every
answer is recorded with its status, parsed body and latency (request sent to
body read, in seconds); transport failures are recorded, never raised.
"""

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .server import is_loopback

JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(slots=True)
class Request:
    method: str
    path: str
    body: dict | None = None
    headers: dict | None = None
    tag: Any = None  # the caller's note: which user, which event


@dataclass(slots=True)
class Response:
    request: Request
    status: int | None  # None: no HTTP answer (see error)
    latency: float  # seconds
    body: Any = None
    error: str | None = None


@dataclass
class Run:
    responses: list[Response]
    wall: float  # seconds from the first request sent to the last answer read
    concurrency: int
    started_at: float = 0.0  # time.time() when the first request was sent


def post(path: str, body: dict, tag: Any = None) -> Request:
    return Request("POST", path, body, JSON_HEADERS, tag)


def get(path: str, headers: dict | None = None, tag: Any = None) -> Request:
    return Request("GET", path, None, headers, tag)


async def _send(session: aiohttp.ClientSession, base_url: str, request: Request) -> Response:
    data = None if request.body is None else json.dumps(request.body)
    started = time.perf_counter()
    try:
        async with session.request(
            request.method, base_url + request.path, data=data, headers=request.headers
        ) as answer:
            raw = await answer.read()
            status = answer.status
    except (TimeoutError, aiohttp.ClientError) as error:
        latency = time.perf_counter() - started
        return Response(request, None, latency, error=f"{type(error).__name__}: {error}")
    latency = time.perf_counter() - started
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")
    return Response(request, status, latency, body)


async def _run(
    base_url: str, work: Sequence[Request | tuple[Request, ...]], concurrency: int, timeout: float
) -> tuple[list[Response], float, float]:
    responses: list[Response] = []
    items = iter(work)
    # At most one connection per worker, kept alive between its requests (gunicorn's
    # gthread workers keep them for `keepalive` seconds), as a browser would.
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def worker() -> None:
            for item in items:
                for request in item if isinstance(item, tuple) else (item,):
                    responses.append(await _send(session, base_url, request))

        started_at, started = time.time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return responses, wall, started_at


def run(
    base_url: str,
    work: Sequence[Request | tuple[Request, ...]],
    concurrency: int,
    timeout: float = 60.0,
) -> Run:
    if not is_loopback(urlsplit(base_url).hostname):
        raise ValueError(f"the load generator only targets loopback, not {base_url}")
    responses, wall, started_at = asyncio.run(_run(base_url, work, concurrency, timeout))
    return Run(responses, wall, concurrency, started_at)
