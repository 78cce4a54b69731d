"""/healthz and the hot event again, measured by wrk: a client that costs next to nothing.

The aiohttp load generator shares the machine's two cores with the server and uses a
quarter to a third of one for either route, which flattens the ratio of booking to
health check (issue 23). wrk (C, one process) is the lighter client; this scenario runs
it side by side in one run, on a site of its own: the default server, the same gunicorn
settings as the other scenarios (WEB_CONCURRENCY workers x GUNICORN_THREADS threads,
LOG_LEVEL=INFO), but with the rate limiter on and its memory:// storage, as a user gets
it by default, at a limit it never reaches (RATE_LIMIT below), so that its cost is
counted and it refuses nothing.

Three measured stretches, each `wrk -t{wrk_threads} -c{concurrency} -d{wrk_seconds}s
--latency` after a warm-up of wrk_warmup_seconds on the same URL and a short settle
(the server finishes what the warm-up left in flight):

1. GET /healthz;
2. POST /api/events/book with bench/wrk_book.lua, a distinct user each request, on a
   fresh event of wrk_tickets tickets (1,000,000: every booking is booked); the warm-up
   books users of its own (FIRST_USER apart by WARMUP_APART);
3. GET /healthz again: the health checks' figure is the mean of the two, which cancels
   a drift of the machine over the run.

Each row: wrk's requests, req/s, p50/p90/p99 and max latency (its --latency
distribution); errors (non-2xx answers, wrk's socket errors, and for the booking every
answer that is not a 201, which the script counts); the CPU of the site's gunicorn
(master and workers) and of mariadbd over the stretch, per request, from a CpuMeter of
its own (only this site's server counts as gunicorn; idle servers of other sites fall
in "others"). wrk is a child this process reaps, so its CPU reaches no process's own
counters: it is read from RUSAGE_CHILDREN and shown as the client's.

Checked after the booking: every answer 201 (not_201 == 0), no socket error; the
event's invariants (checks.py); nobody waiting; and its booking rows are at least the
201 answers wrk counted (warm-up and run) and at most that plus the requests in
flight when each of the two wrk runs stopped (the server finishes them, wrk does not
wait for them).
"""

import re
import resource
import shutil
import subprocess
import time
from pathlib import Path

from . import batches
from .checks import Checked, check
from .cpu import CpuMeter
from .scenarios import Context, row
from .site import start_site

SCRIPT = Path(__file__).resolve().parent / "wrk_book.lua"
# A limit per client address that no run reaches: the limiter counts every request, refuses
# none. memory:// is the default storage (RATELIMIT_STORAGE_URI).
RATE_LIMIT = "100000000 per 15 minutes"
WARMUP_APART = 50_000_000  # the run's first user after the warm-up's (the script: 10^8 a thread)
SETTLE_S = 0.5  # after a warm-up: the requests wrk left in flight are answered
NAMES = {"wrk healthz 1": "healthz, wrk (1st)", "wrk healthz 2": "healthz, wrk (2nd)"}
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def available() -> str | None:
    return shutil.which("wrk")


def version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].split(" Copyright")[0] if lines else "wrk"


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return round(float(match[1]) * _UNITS_MS[match[2]], 3)


def parse(output: str) -> dict:
    """wrk's summary (and, with --latency, its distribution; with wrk_book.lua, not_201)."""

    def find(pattern: str) -> re.Match | None:
        return re.search(pattern, output, re.MULTILINE)

    total = find(r"^\s*(\d+) requests in ([\d.]+\w+), ")
    rps = find(r"^Requests/sec:\s+([\d.]+)")
    if total is None or rps is None:
        raise ValueError(f"no summary in wrk's output:\n{output}")
    latency = find(r"^\s+Latency\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)")
    sockets = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    non_2xx = find(r"^\s*Non-2xx or 3xx responses: (\d+)")
    not_201 = find(r"^not_201 (\d+)$")
    found = {
        "requests": int(total[1]),
        "duration_s": round(_ms(total[2]) / 1000, 3),
        "rps": float(rps[1]),
        "mean_ms": _ms(latency[1]) if latency else None,
        "max_ms": _ms(latency[3]) if latency else None,
        "socket_errors": dict(
            zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True)
        )
        if sockets
        else {"connect": 0, "read": 0, "write": 0, "timeout": 0},
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "not_201": int(not_201[1]) if not_201 else None,
    }
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)\s*$", output, re.MULTILINE):
        found[f"p{pct}_ms"] = _ms(value)
    return found


def _children_cpu() -> float:
    """CPU seconds of the children this process has reaped (wrk's, once it exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wrk(ctx: Context, seconds: int, path: str, script_args: list[str] | None) -> dict:
    s = ctx.scale
    command = ["wrk", f"-t{s.wrk_threads}", f"-c{s.concurrency}", f"-d{seconds}s", "--latency"]
    if script_args is not None:
        command += ["-s", str(SCRIPT)]
    command.append(ctx.base_url + path)
    if script_args is not None:
        command += ["--", *script_args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr}")
    return {**parse(done.stdout), "command": " ".join(command), "output": done.stdout}


def _stretch(ctx: Context, meter: CpuMeter, path: str, args=None, warm_args=None):
    """A warm-up, a settle, then the measured wrk run: (its parse, CPU shares, batches)."""
    s = ctx.scale
    warm = _wrk(ctx, s.wrk_warmup_seconds, path, warm_args)
    time.sleep(SETTLE_S)
    marked = batches.marks(ctx.log_files)
    wrk_before = _children_cpu()
    before = meter.sample()
    result = _wrk(ctx, s.wrk_seconds, path, args)
    cpu = meter.shares(before, meter.sample())
    wrk_s = _children_cpu() - wrk_before
    # wrk's CPU went to this process's reaped children, counted in no group: the client's.
    wrk_pct = round(100 * wrk_s / cpu["wall_s"], 1)
    cpu["client_pct"] = round(cpu["client_pct"] + wrk_pct, 1)
    cpu["unattributed_pct"] = round(max(cpu["unattributed_pct"] - wrk_pct, 0.0), 1)
    cpu["wrk_pct"] = wrk_pct
    result["warmup"] = {k: warm[k] for k in ("requests", "rps", "non_2xx", "not_201")}
    return result, cpu, batches.summarize(batches.since(marked))


def _errors(result: dict) -> int:
    """Socket errors, and answers not 201 (the booking script counts them, non-2xx ones
    included) or else not 2xx."""
    refused = result["non_2xx"] if result["not_201"] is None else result["not_201"]
    return refused + sum(result["socket_errors"].values())


def _row(name: str, result: dict, cpu: dict, batched: dict, checked: Checked | None) -> dict:
    summary = {
        "requests": result["requests"],
        "wall_s": result["duration_s"],
        "rps": result["rps"],
        **{key: result.get(key) for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms")},
        "errors": _errors(result),
        "statuses": {},  # wrk counts answers that are not 2xx (and the script, not 201)
        "error_samples": [] if not _errors(result) else [result["output"][-600:]],
    }
    details = {
        k: result[k] for k in ("command", "socket_errors", "non_2xx", "not_201", "p75_ms", "warmup")
    }
    return row(name, summary, cpu, checked, batched, client="wrk", wrk=details)


def _check_booking(ctx: Context, event_id: int, result: dict) -> Checked:
    checked = check(ctx.engine, ctx.api, [event_id])
    checked.expect(result["not_201"] == 0, f"{result['not_201']} bookings not answered 201")
    checked.expect(
        result["warmup"]["not_201"] == 0,
        f"{result['warmup']['not_201']} warm-up bookings not answered 201",
    )
    event = checked.events.get(event_id)
    if event is not None:
        answered = result["requests"] + result["warmup"]["requests"]
        in_flight = 2 * ctx.scale.concurrency  # at most, when each of the two runs stopped
        checked.expect(event.waiting == 0, f"{event.waiting} users waiting: the event sold out")
        checked.expect(
            answered <= event.booked <= answered + in_flight,
            f"{event.booked} bookings for {answered} answers 201 (+ at most {in_flight} in"
            " flight when wrk stopped)",
        )
    return checked


def compare(healthz: list[dict], book: dict) -> dict:
    """Booking against the mean of the health checks: req/s, and CPU per request
    (workers + MariaDB; the health checks' over both stretches, weighted by requests)."""
    mean_rps = sum(r["rps"] for r in healthz) / len(healthz)

    def cost(rows: list[dict]) -> dict:
        n = sum(r["requests"] for r in rows) or 1
        found = {
            group: round(sum(r["cpu"][f"{group}_ms_per_req"] * r["requests"] for r in rows) / n, 3)
            for group in ("gunicorn", "mariadbd", "client")
        }
        found["server"] = round(found["gunicorn"] + found["mariadbd"], 3)
        return found

    healthz_cpu, book_cpu = cost(healthz), cost([book])
    return {
        "healthz_rps": [r["rps"] for r in healthz],
        "healthz_rps_mean": round(mean_rps, 1),
        "book_rps": book["rps"],
        "rps_ratio": round(book["rps"] / mean_rps, 3) if mean_rps else None,
        "healthz_ms_per_req": healthz_cpu,
        "book_ms_per_req": book_cpu,
        "cpu_ratio": round(book_cpu["server"] / healthz_cpu["server"], 3)
        if healthz_cpu["server"]
        else None,
    }


def run(database, password, workers, tmp, scale, setup, servers, users) -> dict:
    """Start the site, measure healthz, booking, healthz; stop it. Its rows: "wrk healthz 1",
    "wrk book", "wrk healthz 2"."""
    env = {"RATE_LIMIT": RATE_LIMIT, "RATELIMIT_STORAGE_URI": "memory://"}
    ctx = None
    try:
        # A meter of its own: only this site's gunicorn is "gunicorn" in these stretches.
        meter = CpuMeter(lambda: [] if ctx is None else [ctx.server.master_pid])
        ctx = start_site(database, password, workers, tmp, scale, meter, setup, servers, env=env)
        ctx.users = users
        s = ctx.scale
        how = f"wrk -t{s.wrk_threads} -c{s.concurrency} -d{s.wrk_seconds}s"
        rows: dict[str, dict] = {}

        def healthz(key: str) -> None:
            ctx.say(f"wrk: {how} GET /healthz (after {s.wrk_warmup_seconds} s of warm-up)")
            rows[key] = _row(NAMES[key], *_stretch(ctx, meter, "/healthz"), None)

        healthz("wrk healthz 1")
        event_id = ctx.api.initialize("bench wrk hot event", s.wrk_tickets)
        # Users first.., first + 10^8.. (a thread each), and WARMUP_APART above for the run:
        # distinct on this event, which is all the booking asks (the site's database is its own).
        first = ctx.new_users(1)[0]
        ctx.say(f"wrk: {how} booking event {event_id} ({s.wrk_tickets:,} tickets), {SCRIPT.name}")
        result, cpu, batched = _stretch(
            ctx, meter, "/", args=[str(event_id), str(first + WARMUP_APART)],
            warm_args=[str(event_id), str(first)],
        )  # fmt: skip
        time.sleep(SETTLE_S)  # the bookings in flight when wrk stopped commit
        checked = _check_booking(ctx, event_id, result)
        name = f"hot event, {s.wrk_tickets:,} tickets, wrk"
        rows["wrk book"] = _row(name, result, cpu, batched, checked)
        rows["wrk book"]["event_id"] = event_id
        healthz("wrk healthz 2")
        found = compare([rows["wrk healthz 1"], rows["wrk healthz 2"]], rows["wrk book"])
        found.update(
            rate_limit=RATE_LIMIT, storage="memory://", threads=s.wrk_threads,
            connections=s.concurrency, seconds=s.wrk_seconds, warmup_s=s.wrk_warmup_seconds,
            wrk=version(), script=f"bench/{SCRIPT.name}",
        )  # fmt: skip
        rows["wrk book"]["wrk_compare"] = found
        ctx.say(
            f"wrk: booking {found['book_rps']:,.0f} req/s, healthz {found['healthz_rps_mean']:,.0f}"
            f" (mean of {' and '.join(f'{x:,.0f}' for x in found['healthz_rps'])}):"
            f" {found['rps_ratio']}; CPU per request"
            f" {found['book_ms_per_req']['server']} ms vs {found['healthz_ms_per_req']['server']}"
            f" ms: {found['cpu_ratio']}"
        )
        return rows
    finally:
        if ctx is not None:
            ctx.server.stop()
            servers.remove(ctx.server)
