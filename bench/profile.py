"""Optional: sample the gunicorn workers with py-spy while a scenario runs.

`py-spy record --subprocesses --idle --nonblocking --format raw` on the master
writes collapsed stacks ("frame;frame;... count"), idle threads included, so
the counts are the workers' wall time: working, waiting on MariaDB, waiting for
the booking lock, or waiting for a request. `summarize` keeps the workers'
samples (the master only supervises) and gives:

- phases: each sample put in the first phase its stack matches;
- the top functions by own (leaf) time and by inclusive time, and in booking/.

py-spy is not a dependency of the benchmark: without it (`pip install py-spy`)
--profile says so and skips.
"""

import linecache
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Recorder:
    def __init__(self, pid: int, output: Path, rate: int = 100):
        self.command = [
            py_spy() or "py-spy",
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--idle",
            "--nonblocking",
            "--format",
            "raw",
            "--rate",
            str(rate),
            "--output",
            str(output),
        ]
        self.output = output
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def stop(self) -> str:
        """Stop it (SIGINT by its PID, as Ctrl-C would) so it writes its output."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return (err or b"").decode("utf-8", "replace")[-2000:]


def _parse(frame: str) -> tuple[str, str, int]:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), "", 0
    return match["func"], match["file"], int(match["line"] or 0)


def _short(frame: str) -> str:
    func, path, _ = _parse(frame)
    return f"{func} ({path})" if path else func


def snapshot() -> dict[str, list[str]]:
    """booking/'s source as the server loaded it (take it before starting gunicorn): people
    may edit the files while the benchmark runs, and frames carry line numbers."""
    return {
        path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8").splitlines()
        for path in (ROOT / "booking").glob("*.py")
    }


def _source(frame: str, sources: dict[str, list[str]] | None) -> str:
    """The source line a booking/ frame is at (to tell LOCK TABLES from COMMIT)."""
    _, path, line = _parse(frame)
    if not path.startswith("booking/") or not line:
        return ""
    if sources is None:
        return linecache.getline(str(ROOT / path), line)
    lines = sources.get(path, [])
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _io(leaf: str) -> bool:
    return any(m in leaf for m in ("readinto", "_write_bytes", "_read_bytes", "sendall"))


def _phase(frames: list[str], sources: dict[str, list[str]] | None = None) -> str:
    leaf = frames[-1]
    stack = ";".join(frames)
    lock = [f for f in frames if "transaction (booking/sales/locking.py" in f]
    lock_line = _source(lock[-1], sources) if lock else ""
    if "SyncWorker.wait" in stack or "EpollSelector.select" in leaf:
        return "idle: waiting for a request"
    if "_WorkItem.run" not in stack and "concurrent/futures/thread.py" in leaf:
        return "idle: a gthread thread waiting for a request"
    if "wait_turn (booking/sales/change_queue.py" in stack:
        return "queued: waiting for the batch that runs its change"
    if "do_ping" in stack:
        return "pool pre-ping (a round trip per checkout, before the lock)"
    if "do_rollback" in stack and "transaction (booking/sales/locking.py" not in stack:
        return "pool reset-on-return ROLLBACK (a round trip, after the lock)"
    if lock_line and "UNLOCK" in lock_line:
        return "UNLOCK TABLES"
    if lock_line and "LOCK_TABLES" in lock_line:
        return "LOCK TABLES: waiting for the booking lock"
    if "do_commit" in stack:
        return "COMMIT (under the lock)"
    if _io(leaf) and "GroupCommit._transaction" in stack:
        return "other statements under the lock: MariaDB round trips"
    if _io(leaf):
        return "other MariaDB round trips"
    if "logging/" in stack or "jsonlogger" in stack:
        return "logging (JSON lines to file and stderr)"
    # webargs' and smorest's decorators wrap the whole view, so only their work counts here:
    # marshmallow frames, or a leaf in webargs (parsing the body).
    if "marshmallow/" in stack or "webargs/" in leaf:
        return "validation and serialisation (webargs, marshmallow)"
    if "sqlalchemy/" in leaf:
        return "SQLAlchemy (statement building, execution, results)"
    if "pymysql/" in leaf:
        return "PyMySQL (protocol, not waiting)"
    if "booking/" in leaf:
        return "booking/ code itself"
    if any(m in leaf for m in ("flask/", "werkzeug/", "flask_smorest/", "flask_limiter/")):
        return "Flask, Werkzeug, smorest, limiter"
    if "gunicorn/" in leaf:
        return "gunicorn (accept, parse, write, close)"
    return "other"


def summarize(collapsed: Path, sources: dict[str, list[str]] | None = None, top: int = 15) -> dict:
    own: Counter = Counter()
    inclusive: Counter = Counter()
    phases: Counter = Counter()
    total = 0
    workers: set[str] = set()
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        processes = [f for f in frames if f.startswith("process ")]
        if len(processes) < 2:
            continue  # the master: it only supervises
        workers.add(processes[-1].split(":", 1)[0])
        frames = [f for f in frames if not f.startswith("process ")]
        if not frames:
            continue
        samples = int(count)
        total += samples
        names = [_short(f) for f in frames]
        own[names[-1]] += samples
        for name in set(names):
            inclusive[name] += samples
        phases[_phase(frames, sources)] += samples
    total = max(total, 1)

    def table(counter: Counter, keep=lambda name: True) -> list[dict]:
        rows = [(name, n) for name, n in counter.most_common() if keep(name)][:top]
        return [{"function": name, "pct": round(100 * n / total, 1)} for name, n in rows]

    return {
        "samples": total,
        "workers": len(workers),
        "phases": [
            {"phase": name, "pct": round(100 * n / total, 1)} for name, n in phases.most_common()
        ],
        "top_own": table(own),
        "top_inclusive": table(inclusive, lambda name: "gunicorn/" not in name),
        "booking_inclusive": table(inclusive, lambda name: "(booking/" in name),
    }
