"""`python -m stress [--only NAME ...]`: run the fault scenarios large, print the table."""

import argparse
import ipaddress
import os
import runpy
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from stress import auth_timing
from stress.background import Background, Plan
from stress.batches import Batches, LogMarks, read_batches
from tests.conftest import migrate, wipe
from tests.fault_scenarios import Report, clients_gone, db_outage, killed_master, lock_wait

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/booking_stress?charset=utf8mb4"
# The servers run as deployed: gunicorn.conf.py's worker count (WEB_CONCURRENCY, 2) and
# threads (GUNICORN_THREADS, 16, which the servers read from this environment).
WORKERS = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["workers"]

# name -> (scenario, its arguments beyond url, password, workdir, lock_mode, the background
# storm beside it or None). Sized to finish, auth timing included, in 6 to 9 minutes on a
# shared 2-core machine (about 80,000 requests; each own storm's user sends 1.3 requests
# on average, a booking and perhaps a cancel). The scenarios' own storms
# (httpx, checked answer by answer) are paced; most of the load is the background's
# (aiohttp, another process). Connections stay below the servers' 2 x 32
# (GUNICORN_WORKER_CONNECTIONS): a gthread worker holding its cap accepts no more.
# Every storm books parties (issue 20): the scenarios' own of 1..6 tickets, a third of
# the users cancelling once answered, half of those part of their party (PARTIES); the
# background's likewise (Plan's defaults), on events of different maxOvertakes.
PARTIES = dict(parties=6, cancels=0.3, partial=0.5)
SCENARIOS: dict[str, tuple[Callable[..., Report | list[Report]], dict, Plan | None]] = {
    "outage-refuse": (
        db_outage,
        dict(
            users=5400, tickets=800, concurrency=16, rate=100, hold=4.0, mode="refuse",
            **PARTIES,
        ),
        Plan(seed=71),
    ),
    "outage-reset": (
        db_outage,
        dict(
            users=3900, tickets=600, concurrency=16, rate=100, hold=4.0, mode="reset",
            cut_at=0.4, seed=61, **PARTIES,
        ),
        Plan(seed=72),
    ),
    # Longer than the service's socket timeouts (read: 3 x LOCK_TIMEOUT + 5 = 11 s, twice
    # over when a reconnect follows): requests in flight when the database goes
    # silent must end in a 503 by themselves, before the restore.
    "outage-blackhole": (
        db_outage,
        dict(
            users=2000, tickets=200, concurrency=16, rate=50, hold=26.0, mode="blackhole",
            cut_at=0.2, recovery_bound=30.0, client_timeout=60.0, seed=62, **PARTIES,
        ),
        Plan(seed=73),
    ),
    # 4 in flight while the lock is held, beside 16 background users: each waits for its
    # 503 behind the others (2 workers x 16 threads), within the bound.
    "lock-tables": (
        lock_wait,
        dict(requests=20, concurrency=4, hold=10.0, bound=15.0, kinds=("tables",), **PARTIES),
        Plan(concurrency=16, seed=74),
    ),
    "lock-row": (
        lock_wait,
        dict(requests=20, concurrency=4, hold=10.0, bound=15.0, kinds=("row",), **PARTIES),
        Plan(concurrency=16, seed=75),
    ),
    "killed-master": (
        killed_master,
        dict(
            users=5400, tickets=800, concurrency=24, rate=150, kill_workers_at=(0.15, 0.3),
            kill_master_at=0.5, **PARTIES,
        ),
        Plan(seed=76),
    ),
    "clients-gone": (
        clients_gone,
        dict(per_kind=40, stall=0.5, normal=3100, **PARTIES),
        Plan(concurrency=24, seed=77),
    ),
}  # fmt: skip


def say(message: str, started: float = time.monotonic()) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stress", description=__doc__)
    parser.add_argument(
        "--url",
        default=os.environ.get("STRESS_MYSQL_URL", DEFAULT_URL),
        help="the scratch database, dropped and made anew (STRESS_MYSQL_URL)",
    )
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run only these")
    parser.add_argument(
        "--lock-mode",
        nargs="+",
        choices=("table", "row"),
        default=["table"],
        help="BOOKING_LOCK of the servers; each scenario runs once per mode (default: table)",
    )
    return parser.parse_args(argv)


def checked_url(raw: str) -> sa.URL:
    url = sa.make_url(raw)
    host = url.host or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"stress: the database must be on loopback, not {host!r}")
    name = url.database or ""
    if "stress" not in name or not name.replace("_", "").isalnum():
        # Dropped at the start and the end: refuse anything that is not plainly ours.
        raise SystemExit(f"stress: database name {name!r} must contain 'stress' ([A-Za-z0-9_])")
    if (ROOT / "instance" / "config.py").exists():
        # It wins over DATABASE_URL: the servers would not use the database (or proxy) given.
        raise SystemExit("stress: instance/config.py exists and would override DATABASE_URL")
    return url


def table(reports: list[Report]) -> str:
    header = (
        "scenario",
        "requests",
        "2xx",
        "errors by status",
        "invariant violations",
        "other violations",
        "recovery",
        "batches",
        "mean size",
        "p99 size",
        "max size",
        "failed",
        "rerun",
    )
    rows = [(*outcome_cells(r), *batch_cells(r.data.get("batches"))) for r in reports]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    text = {0, 3}  # left-aligned; the other columns are numbers

    def line(cells) -> str:
        return (
            "| "
            + " | ".join(
                cell.ljust(w) if i in text else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def outcome_cells(r: Report) -> tuple[str, ...]:
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(r.errors.items(), key=str))
    return (
        r.scenario,
        str(r.requests),
        str(r.acknowledged),
        "{" + errors + "}",
        str(len(r.invariant_violations)),
        str(len(r.violations)),
        f"{r.recovery:.2f} s" if r.recovery is not None else "-",
    )


def batch_cells(batches: Batches | None) -> tuple[str, ...]:
    # "-": a report that shares its servers with the one above (see run_scenario).
    if batches is None:
        return ("-",) * 6
    return (
        str(len(batches.sizes)),
        f"{batches.mean:.1f}",
        str(batches.p99),
        str(max(batches.sizes, default=0)),
        str(batches.outcomes["failed"]),
        str(batches.outcomes["rerun"]),
    )


def legend(reports: list[Report]) -> str:
    seen = dict.fromkeys(r.recovery_of for r in reports if r.recovery_of)
    return "\n".join(
        [
            "requests: the scenario's own storm, its retries and checks, and the background"
            " storm beside it (bookings and cancels on events of its own, aiohttp); parties of"
            " 1-6 tickets, cancels of part of a party or all of it",
            "errors by status: every answer that was not 2xx (503: problem+json + Retry-After;"
            " 409: a retry found its first try applied (already booked or waiting; or"
            " too-many-tickets: a part given back twice would be more than is left); 404: a"
            " cancel retried found its first try had given back everything; transport: no"
            " answer, a killed worker)",
            "recovery: " + "; ".join(seen),
            "batches: group-commit batches in the scenario's server logs; size: changes per"
            " batch; failed: the whole batch answered 503, nothing committed; rerun: an"
            " unexpected error, its changes ran again one by one",
        ]
    )


def run_scenario(
    name: str, mode: str, database_url: str, password: str, workdir: Path
) -> list[Report]:
    """One scenario with its background storm; the batches its servers logged go on its
    first report (the others, if any, ran on the same servers)."""
    scenario, arguments, plan = SCENARIOS[name]
    background = Background(plan, password) if plan is not None else None
    marks = LogMarks(workdir)
    try:
        done = scenario(
            database_url,
            password,
            workdir,
            lock_mode=mode,
            workers=WORKERS,
            log_level="INFO",  # the batch lines; each request logs a line too
            alongside=background,
            **arguments,
        )
    except Exception as error:  # a scenario that breaks is a finding, not the end
        failed = Report(f"{name}, {mode} lock")
        failed.violated(f"the scenario failed: {type(error).__name__}: {error}")
        traceback.print_exc()
        done = [failed]
    done = done if isinstance(done, list) else [done]
    if background is not None and background.records:
        background.merge(done[0], database_url)
    batches = read_batches(marks)
    done[0].data["batches"] = batches
    done[0].figures["batches"] = batches.summary()
    return done


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    url = checked_url(args.url)
    database_url = url.render_as_string(hide_password=False)
    server = sa.create_engine(url.set(database=""), poolclass=sa.pool.NullPool)
    workdir = Path(tempfile.mkdtemp(prefix="booking-stress-"))
    password = "stress-" + secrets.token_hex(16)
    names = args.only or list(SCENARIOS)
    reports: list[Report] = []
    started = time.monotonic()
    try:
        with server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {url.database}")
            conn.exec_driver_sql(f"CREATE DATABASE {url.database} CHARACTER SET utf8mb4")
        migrate(database_url)
        say(f"database {url.database} made and migrated; logs in {workdir}")
        for mode, name in ((mode, name) for mode in args.lock_mode for name in names):
            say(f"{name}, {mode} lock ...")
            wipe(database_url)
            done = run_scenario(name, mode, database_url, password, workdir)
            for report in done:
                say(report.summary())
            reports += done
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {url.database}")
        server.dispose()
    broken = sum(len(r.violations) + len(r.invariant_violations) for r in reports)
    background = sum(r.data.get("background_requests", 0) for r in reports)
    print()
    print(table(reports))
    print()
    print(legend(reports))
    print(
        f"total {sum(r.requests for r in reports)} requests ({background} of them from the"
        f" background storms) in {time.monotonic() - started:.0f} s;"
        f" database {url.database} dropped"
    )
    print()
    print(auth_timing.text(auth_timing.measure()))
    print()
    for report in reports:
        print(report.details())
    if broken:
        print(f"\n{broken} broken promise(s); service logs kept in {workdir}")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
