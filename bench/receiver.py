"""A webhook receiver on loopback: an aiohttp server in a thread and event loop of its own.

It answers 204 to every POST at once and keeps, in arrival order, each request's
arrival time (time.time(), when the handler starts), its Standard Webhooks
headers and its body; the bench reads them afterwards. Its CPU is the client's
(cpu_seconds: its thread's alone).
"""

import asyncio
import threading
import time
from dataclasses import dataclass

from aiohttp import web

from .cpu import TICKS
from .server import free_port

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass(slots=True)
class Arrival:
    at: float  # time.time() when the request reached the handler
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A loopback HTTP server in its own thread and event loop: 204 to every POST."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.arrivals: list[Arrival] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="receiver", daemon=True)
        self._runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        at = time.time()
        body = await request.read()
        self.arrivals.append(Arrival(at, {k: request.headers.get(k, "") for k in HEADERS}, body))
        return web.Response(status=204)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def cpu_seconds(self) -> float:
        """CPU its thread (the event loop that serves every request) used so far."""
        try:
            with open(f"/proc/self/task/{self._thread.native_id}/stat") as stat:
                text = stat.read()
        except OSError:
            return 0.0
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
