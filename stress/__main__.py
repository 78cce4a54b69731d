"""`python -m stress [--only NAME ...]`: run the fault scenarios large, print the table."""

import argparse
import ipaddress
import os
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
from tests.conftest import migrate, wipe
from tests.fault_scenarios import Report, clients_gone, db_outage, killed_master, lock_wait

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/booking_stress?charset=utf8mb4"

# name -> (scenario, its arguments beyond url, password, workdir, lock_mode). Sized to
# finish the whole run in a few minutes on a small machine; larger than the tests'.
SCENARIOS: dict[str, tuple[Callable[..., Report | list[Report]], dict]] = {
    "outage-refuse": (
        db_outage,
        dict(users=3000, tickets=500, concurrency=64, rate=200, hold=4.0, mode="refuse"),
    ),
    "outage-reset": (
        db_outage,
        dict(
            users=2000, tickets=300, concurrency=64, rate=200, hold=4.0, mode="reset",
            cut_at=0.4, seed=61,
        ),
    ),
    # Longer than the service's socket timeouts (read: 3 x LOCK_TIMEOUT + 5 = 11 s, twice
    # over when a reconnect follows): requests in flight when the database goes
    # silent must end in a 503 by themselves, before the restore.
    "outage-blackhole": (
        db_outage,
        dict(
            users=1500, tickets=200, concurrency=64, rate=100, hold=26.0, mode="blackhole",
            cut_at=0.2, recovery_bound=30.0, client_timeout=60.0, seed=62,
        ),
    ),
    # 4 in flight on 4 workers: a new request arrives as each 503 leaves.
    "lock-wait": (lock_wait, dict(requests=20, concurrency=4, hold=10.0, bound=15.0)),
    "killed-master": (
        killed_master,
        dict(
            users=2500, tickets=400, concurrency=64, kill_workers_at=(0.15, 0.3),
            kill_master_at=0.5,
        ),
    ),
    "clients-gone": (clients_gone, dict(per_kind=40, stall=0.5, normal=400)),
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
    )
    rows = []
    for r in reports:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(r.errors.items(), key=str))
        rows.append(
            (
                r.scenario,
                str(r.requests),
                str(r.acknowledged),
                "{" + errors + "}",
                str(len(r.invariant_violations)),
                str(len(r.violations)),
                f"{r.recovery:.2f} s" if r.recovery is not None else "-",
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = {1, 2, 4, 5, 6}

    def line(cells) -> str:
        return (
            "| "
            + " | ".join(
                cell.rjust(w) if i in numeric else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def legend(reports: list[Report]) -> str:
    seen = dict.fromkeys(r.recovery_of for r in reports if r.recovery_of)
    return "\n".join(
        [
            "errors by status: every answer that was not 2xx (503: problem+json + Retry-After;"
            " 409: a retry found its first try applied; transport: no answer, a killed worker)",
            "recovery: " + "; ".join(seen),
        ]
    )


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
            scenario, arguments = SCENARIOS[name]
            try:
                done = scenario(database_url, password, workdir, lock_mode=mode, **arguments)
            except Exception as error:  # a scenario that breaks is a finding, not the end
                failed = Report(f"{name}, {mode} lock")
                failed.violated(f"the scenario failed: {type(error).__name__}: {error}")
                traceback.print_exc()
                done = [failed]
            done = done if isinstance(done, list) else [done]
            for report in done:
                say(report.summary())
            reports += done
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {url.database}")
        server.dispose()
    broken = sum(len(r.violations) + len(r.invariant_violations) for r in reports)
    print()
    print(table(reports))
    print()
    print(legend(reports))
    print(f"total {time.monotonic() - started:.0f} s; database {url.database} dropped")
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
