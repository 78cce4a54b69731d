"""The system under test: a scratch MariaDB database and `gunicorn -c gunicorn.conf.py wsgi:app`.

Everything stays on loopback. The database is dropped and made anew at the
start and dropped at the end; gunicorn is started and stopped by its PID only.
"""

import ipaddress
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/booking_bench?charset=utf8mb4"


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def gunicorn_settings() -> dict:
    """threads and worker_connections as gunicorn.conf.py gives them to the servers (they
    inherit this environment, GUNICORN_THREADS included): the bench reports them, it does
    not set them. Running the file is what gunicorn does too; it only reads os.environ."""
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    return {"threads": conf["threads"], "worker_connections": conf["worker_connections"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Database:
    """The benchmark's own database on the MariaDB server; nothing else is touched."""

    def __init__(self, url: str):
        self.url = sa.make_url(url)
        if not is_loopback(self.url.host):
            raise SystemExit(f"bench: the database must be on loopback, not {self.url.host!r}")
        name = self.url.database or ""
        if "bench" not in name or not name.replace("_", "").isalnum():
            # It is dropped at start and end: refuse anything that is not plainly ours.
            raise SystemExit(f"bench: database name {name!r} must contain 'bench' ([A-Za-z0-9_])")
        self.name = name
        self.url_string = self.url.render_as_string(hide_password=False)
        self._server = sa.create_engine(self.url.set(database=""), poolclass=sa.pool.NullPool)
        self.engine: sa.Engine | None = None

    def sibling(self, suffix: str) -> "Database":
        """Another scratch database on the same server, named after this one."""
        url = self.url.set(database=self.name + suffix)
        return Database(url.render_as_string(hide_password=False))

    def create(self, log_file: str) -> float:
        """Drop and create the database, run the migrations; return the seconds it took."""
        started = time.perf_counter()
        with self._server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.name}")
            conn.exec_driver_sql(f"CREATE DATABASE {self.name} CHARACTER SET utf8mb4")
        env = {**os.environ, "DATABASE_URL": self.url_string, "LOG_FILE": log_file}
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.engine = sa.create_engine(self.url, pool_size=2, max_overflow=2)
        return time.perf_counter() - started

    def drop(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
        with self._server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.name}")

    def version(self) -> str:
        with self._server.connect() as conn:
            return conn.exec_driver_sql("SELECT VERSION()").scalar_one()

    def variables(self, *names: str) -> dict[str, str]:
        with self._server.connect() as conn:
            rows = conn.exec_driver_sql(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN ("
                + ",".join(["%s"] * len(names))
                + ")",
                names,
            )
            return {name: value for name, value in rows}


def stop_process(process: subprocess.Popen | None, timeout: float = 30) -> None:
    """SIGTERM a running process and wait for it, killing it after `timeout`."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Gunicorn:
    """gunicorn as an operator runs it, bound to a free loopback port."""

    def __init__(
        self,
        database_url: str,
        admin_password: str,
        workers: int,
        log_dir: str,
        lock_mode: str = "table",
        env: dict[str, str] | None = None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = os.path.join(log_dir, "booking.log")
        self.stderr_file = os.path.join(log_dir, "gunicorn-stderr.log")
        self.workers = workers
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "ADMIN_USERNAME": "admin",
            "ADMIN_PASSWORD": admin_password,
            "RATE_LIMIT": "off",
            "LOG_FILE": self.log_file,
            "LOG_LEVEL": "INFO",  # as in production: one JSON line per request and per outcome
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "BOOKING_LOCK": lock_mode,
            # The webhook scenario's receiver is on loopback (checked when a webhook is
            # created); the booking path does not read it.
            "WEBHOOK_ALLOW_PRIVATE": "true",
            **(env or {}),  # a scenario's own settings (the opening's LOCK_TIMEOUT)
        }
        self.env.pop("GUNICORN_ACCESS_LOG", None)
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> float:
        """Start and wait until every worker answers /healthz; return the seconds it took."""
        started = time.perf_counter()
        command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
        with open(self.stderr_file, "ab") as stderr:
            # Its own session: a Ctrl-C in the terminal reaches only us, and we stop it.
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.process.returncode}; see {self.stderr_file}"
                )
            if len(self.worker_pids()) == self.workers and self._healthy():
                return time.perf_counter() - started
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer on {self.url} within {timeout} s")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 30) -> None:
        stop_process(self.process, timeout)

    @property
    def master_pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """The master's children, read from /proc."""
        if self.process is None:
            return []
        master = self.process.pid
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            stat = _read_stat(int(entry))
            if stat is not None and int(stat[1]) == master:
                pids.append(int(entry))
        return sorted(pids)


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [0] state, [1] ppid, ..."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()
