"""A real webhook receiver on loopback, and the worker as a real process.

`Receiver` is an HTTP server in a thread that records every POST (headers, body,
when it arrived) and answers with what its `answer` callable says, so a test
can make it fail, say 410, or go away and come back on the same port.
`WorkerProcess` runs `flask --app wsgi worker` the way an operator does.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from .servers import ROOT, free_port, stop_process


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival
    status: int  # what the receiver answered

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class Receiver:
    def __init__(self, answer: Callable[[int], int] = lambda n: 200, port: int | None = None):
        # answer(n): the status for the n-th request (1-based).
        self.answer = answer
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    status = receiver.answer(len(receiver.received) + 1)
                    receiver.received.append(
                        Received(
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.time(),
                            status,
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def acknowledged(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def wait_for(self, count: int, timeout: float = 60) -> list[Received]:
        """Wait until `count` requests were acknowledged; them, in arrival order."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := self.acknowledged()) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{len(self.acknowledged())} of {count} webhooks arrived")


def verified(received: Received, secret: str) -> dict:
    """The payload, after the standardwebhooks package checked its signature."""
    return Webhook(secret).verify(received.body, received.headers)


class WorkerProcess:
    """`flask --app wsgi worker` (or `--once`) against `database_url`."""

    def __init__(self, database_url: str, output: Path | None = None, **env):
        self.output = output or Path(tempfile.mkstemp(prefix="booking-worker-", suffix=".log")[1])
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "FLASK_APP": "wsgi",
            "WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
            "WORKER_POLL_INTERVAL": "0.05",
            "LOG_FILE": str(self.output) + ".json",
            **{key: str(value) for key, value in env.items()},
        }
        self.process: subprocess.Popen | None = None

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flask", "--app", "wsgi", "worker", *args]

    def start(self) -> "WorkerProcess":
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                self.command(), cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def once(self, timeout: float = 120) -> None:
        done = subprocess.run(
            self.command("--once"), cwd=ROOT, env=self.env, capture_output=True, timeout=timeout
        )
        assert done.returncode == 0, done.stdout.decode()[-3000:] + done.stderr.decode()[-3000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        return stop_process(self.process, sig, timeout)

    def __enter__(self) -> "WorkerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def worker_processes(database_url: str, directory: Path, suffix: str = ".log", **env):
    """Makes `flask worker` processes (not started), each with `env` and its output in
    `directory`/NAME`suffix`; SIGKILLs every one made when the block ends."""
    made: list[WorkerProcess] = []

    def make(name: str = "worker") -> WorkerProcess:
        made.append(WorkerProcess(database_url, directory / f"{name}{suffix}", **env))
        return made[-1]

    try:
        yield make
    finally:
        for process in made:
            process.stop(signal.SIGKILL)
