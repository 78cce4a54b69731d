"""Real gunicorn processes for the concurrency and durability tests."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None, sig: int, timeout: float) -> int | None:
    """Signal a running process, wait for it (killing it after `timeout`); its exit code."""
    if process and process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode if process else None


class Gunicorn:
    """`gunicorn -c gunicorn.conf.py wsgi:app` on a loopback port, as an operator runs it."""

    def __init__(
        self,
        database_url: str,
        admin_password: str,
        workers: int = 4,
        output: Path | None = None,
        **env,
    ):
        # output: a file for gunicorn's stdout and stderr (JSON lines at INFO), else inherited.
        self.output = output
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "ADMIN_USERNAME": "admin",
            "ADMIN_PASSWORD": admin_password,
            "RATE_LIMIT": "off",
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "LOG_FILE": os.path.join(tempfile.gettempdir(), f"booking-gunicorn-{self.port}.log"),
            **{key: str(value) for key, value in env.items()},
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "Gunicorn":
        command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
        if self.output is None:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env)
        else:
            with open(self.output, "ab") as out:
                self.process = subprocess.Popen(
                    command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
                )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = self.output.read_text()[-3000:] if self.output else ""
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}\n{said}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer on {self.url} within {timeout} s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        stop_process(self.process, sig, timeout)

    def __enter__(self) -> "Gunicorn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def worker_pids(master_pid: int) -> set[int]:
    """The gunicorn master's child processes: its workers."""
    found = set()
    for children in Path(f"/proc/{master_pid}/task").glob("*/children"):
        found.update(int(pid) for pid in children.read_text().split())
    if found:
        return found
    # Kernels without CONFIG_PROC_CHILDREN: read each process's parent from /proc.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == master_pid:
            found.add(int(stat.parent.name))
    return found


def wait_for_workers(master_pid: int, count: int, gone: set[int], timeout: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_pids(master_pid)
        if len(pids) == count and not pids & gone:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"gunicorn has workers {worker_pids(master_pid)}, wanted {count} new")
