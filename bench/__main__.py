"""`python -m bench [--quick] [--only NAME,...]`: set up, run every scenario (or only
those named), report, clean up.

Progress goes to stderr, the table and ratios to stdout, the files to
bench/results/ (a run with --only writes them to a temporary directory unless
--output says where, so that it never replaces the full run's). Exits 1 if any
scenario broke an invariant or had errors.
"""

import argparse
import itertools
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from . import (
    cluster,
    dashboard,
    dashboard_plot,
    direct,
    holds,
    offers,
    opening,
    parties,
    report,
    scenarios,
    webhooks,
    wrk,
)
from .cpu import CpuMeter
from .growth import growth as run_growth
from .profile import Recorder, py_spy, snapshot, summarize
from .ratios import ratios
from .server import DEFAULT_URL, ROOT, Database, Gunicorn, gunicorn_settings
from .settings import FULL, QUICK
from .site import RESULTS, say, start_site


def mkdtemp(kind: str) -> str:
    return tempfile.mkdtemp(prefix=f"booking-bench-{kind}-")


# The scenarios --only can name, in the order a full run runs them. "status" reads the
# hot event's, so it brings "hot" along. "wrk": healthz and the hot event again, measured
# by wrk on a site of its own (wrk.py).
SCENARIOS = (
    "healthz", "hot", "wrk", "parties", "holds", "many", "storm", "offers", "status", "webhooks",
    "row", "dashboard", "cluster", "direct", "growth", "opening",
)  # fmt: skip
NEEDS = {"status": "hot"}


def _names(text: str) -> set[str]:
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = names - set(SCENARIOS)
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {sorted(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    return names | {NEEDS[name] for name in names if name in NEEDS}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a scaled-down run (~1 minute)")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "2")),
        help="gunicorn workers (WEB_CONCURRENCY; default 2, as gunicorn.conf.py's);"
        " threads per worker come from gunicorn.conf.py (GUNICORN_THREADS)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("BENCH_CONCURRENCY", "64")),
        help="requests in flight (BENCH_CONCURRENCY; default 64)",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("BENCH_MYSQL_URL", DEFAULT_URL),
        help="the scratch database, dropped and made anew (BENCH_MYSQL_URL)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, run the hot event once more under py-spy and list the hot spots",
    )
    parser.add_argument(
        "--only",
        type=_names,
        metavar="NAME[,NAME...]",
        help=f"run only these scenarios ({', '.join(SCENARIOS)}); the ratios that need"
        " others are left out",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where latest.* go (default: bench/results/, or with --only a new temporary"
        " directory)",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument(
        "--no-cluster", action="store_true", help="skip the 3-node Galera cluster scenarios"
    )
    return parser.parse_args(argv)


def machine(db: Database) -> dict:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        kib = int(meminfo.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(kib / 2**20, 1),
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "mariadb_version": db.version(),
        "mariadb": db.variables(
            "innodb_flush_log_at_trx_commit", "innodb_buffer_pool_size", "sync_binlog", "log_bin"
        ),
    }


def source_version() -> dict:
    """Which booking/ code ran: the commit, and whether booking/ differs from it.
    Read-only (no optional locks): other people may be using git in this tree."""
    git = ["git", "--no-optional-locks", "-C", str(ROOT)]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "booking"]).returncode
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "booking_changed": None}
    return {"commit": commit, "booking_changed": changed != 0}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.only and "wrk" in args.only and not wrk.available():
        raise SystemExit("bench: --only wrk needs wrk (apt-get install wrk)")
    if args.output is None:
        args.output = RESULTS if args.only is None else Path(mkdtemp("only"))
    started = time.perf_counter()
    scale = replace(QUICK if args.quick else FULL, concurrency=args.concurrency)
    date = datetime.now().astimezone().isoformat(timespec="seconds")

    def want(name: str) -> bool:
        return args.only is None or name in args.only

    db = Database(args.url)
    growth_db = db.sibling("_growth")  # the large growth event gets its own table and server
    row_db = db.sibling("_row")  # the same scenarios again with BOOKING_LOCK=row
    dashboard_db = db.sibling("_dashboard")  # fresh counters and no earlier webhooks
    wrk_db = db.sibling("_wrk")  # wrk's site: the rate limiter on (wrk.py)
    # The openings, with LOCK_TIMEOUT raised: table lock, then row lock.
    opening_dbs = (db.sibling("_opening"), db.sibling("_opening_row"))
    password = secrets.token_urlsafe(24)
    servers: list[Gunicorn] = []
    meter = CpuMeter(lambda: [server.master_pid for server in servers])
    rows: dict[str, dict] = {}
    growth: dict = {}
    party_growth: dict = {}
    profile: dict | None = None
    drawn: dashboard.DashboardRun | None = None
    setup: dict = {}
    users = itertools.count(1)  # one supply of distinct user ids for every site
    try:
        info = machine(db)
    except sa.exc.OperationalError as error:
        where = f"{db.url.host}:{db.url.port or 3306}"
        raise SystemExit(f"bench: MariaDB at {where} is unreachable: {error.orig}") from None
    tmp = tempfile.mkdtemp(prefix="booking-bench-")
    sources = snapshot()  # booking/ as the servers will load it, for the profile
    source = source_version()
    on_main_site = {*SCENARIOS} - {"row", "dashboard", "opening", "wrk"}
    try:

        def site(database, lock_mode="table"):
            started_site = start_site(
                database, password, args.workers, tmp, scale, meter, setup, servers, lock_mode
            )
            started_site.users = users
            return started_site

        main_site = args.only is None or args.only & on_main_site or args.profile
        ctx = site(db) if main_site else None
        if want("healthz"):
            rows["healthz"] = scenarios.healthz(ctx)
        if want("hot"):
            rows["hot"] = scenarios.hot_event(ctx)
        if want("wrk") and wrk.available():
            rows.update(wrk.run(wrk_db, password, args.workers, tmp, scale, setup, servers, users))
        elif want("wrk"):
            say("wrk: not installed (apt-get install wrk); its scenario is skipped")
        if want("parties"):
            rows["hot parties"] = parties.hot_parties(ctx)
        if want("holds"):
            rows.update(holds.run(ctx))
        if want("many"):
            rows["many"] = scenarios.many_events(ctx)
        if want("storm"):
            rows["storm"] = scenarios.cancel_storm(ctx)
        if want("offers"):
            rows.update(offers.run(ctx))
        if want("status"):
            rows["status"] = scenarios.status_reads(ctx, rows["hot"]["event_id"])
        if want("webhooks"):
            # The burst with the worker between two without it, same client (webhooks.py).
            rows.update(webhooks.side_by_side(ctx, servers))
            rows["steady webhook"] = webhooks.run(
                ctx, servers, name="hot event one at a time, webhook + worker", in_flight=1
            )
        if want("row"):
            row_ctx = site(row_db, lock_mode="row")
            rows["hot row"] = scenarios.hot_event(row_ctx, name="hot event, row lock")
            rows["many row"] = scenarios.many_events(row_ctx, name="many events, row lock")
            rows["hot webhook row"] = webhooks.run(
                row_ctx, servers, name="hot event, row lock, webhook + worker"
            )
        if want("dashboard"):
            dashboard_ctx = site(dashboard_db)
            drawn = dashboard.run(dashboard_ctx)
            dashboard_ctx.server.stop()
        if want("cluster") and not args.no_cluster:
            rows.update(cluster.run(ctx, password, args.workers, tmp, servers))
        for kind in ("service", "raw", "commit") if want("direct") else ():
            for processes in (1, scale.direct_processes):
                say(f"direct {kind}: {processes} connection(s)")
                count = scale.direct_users if kind == "service" else scale.raw_bookings
                tickets = scale.direct_tickets if kind == "service" else count
                rows[f"direct {kind} {processes}"] = direct.run(
                    kind, processes, db.url_string, db.engine, ctx.api, meter,
                    ctx.new_users(count), tickets,
                )  # fmt: skip
        if args.profile:
            profile = run_profile(ctx, args.output, sources)
        if want("growth"):
            growth_ctx = site(growth_db)  # the large growth event gets a table and server
            growth = run_growth(ctx, growth_ctx)
            party_growth = run_growth(ctx, growth_ctx, parties=scale.party_max)
            for kind in ("cancel", "rebook", "status"):
                for size in ("small", "large"):
                    rows[f"growth {kind} {size}"] = growth[size][kind]
            for kind in ("cancel", "rebook", "status"):
                for size in ("small", "large"):
                    rows[f"growth parties {kind} {size}"] = party_growth[size][kind]
        if want("opening"):
            rows.update(
                opening.run(
                    opening_dbs, password, args.workers, tmp, scale, meter, setup, servers, users
                )
            )
    except BaseException:
        say(f"stopped; gunicorn's logs are in {tmp}")
        raise
    finally:
        for server in servers:
            server.stop()
        if not args.keep_db:
            for database in (db, growth_db, row_db, dashboard_db, wrk_db, *opening_dbs):
                database.drop()
    ok = all(r["invariants_ok"] is not False and r["errors"] == 0 for r in rows.values())
    ok = ok and (drawn is None or drawn.checked.ok)
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        say(f"logs kept in {tmp}")
    results = {
        "date": date,
        "mode": "quick" if args.quick else "full",
        "only": sorted(args.only) if args.only else None,
        "total_s": round(time.perf_counter() - started, 1),
        "ok": ok,
        "machine": info,
        "source": source,
        "config": {
            "workers": args.workers,
            **gunicorn_settings(),  # threads, worker_connections
            "concurrency": scale.concurrency,
            "growth_concurrency": scale.growth_concurrency,
            "log_level": "INFO",
            "rate_limit": "off",
            "databases": [d.url.render_as_string(hide_password=True) for d in (db, growth_db)],
            "scale": asdict(scale),
        },
        "setup": setup,
        "rows": list(rows.values()),
        "ratios": ratios(rows, growth, "quick" if args.quick else "full", party_growth),
        "growth": growth,
        "growth_parties": party_growth,
        "profile": profile,
        "dashboard": drawn.summary() if drawn else None,
    }
    paths = report.write(results, args.output)
    if drawn:
        paths["dashboard"] = args.output / "dashboard.png"
        dashboard_plot.plot(drawn, paths["dashboard"])
    print(report.text(results))
    if profile:
        print(profile_text(profile))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0 if ok else 1


def run_profile(ctx: scenarios.Context, output: Path, sources: dict) -> dict:
    if py_spy() is None:
        say("profile: py-spy is not installed (pip install py-spy); skipped")
        return {"skipped": "py-spy not installed"}
    collapsed = Path(tempfile.gettempdir()) / f"booking-bench-profile-{os.getpid()}.txt"
    recorder = Recorder(ctx.server.master_pid, collapsed)
    recorder.start()
    time.sleep(1.0)  # py-spy attaches to every process first
    try:
        row = scenarios.hot_event(ctx, name="hot event under py-spy")
    finally:
        log = recorder.stop()
    if not collapsed.exists():
        return {"skipped": f"py-spy wrote nothing: {log}"}
    output.mkdir(parents=True, exist_ok=True)
    kept = output / "latest-profile.txt"
    shutil.move(collapsed, kept)
    return {
        "run": {k: row[k] for k in ("rps", "p50_ms", "p99_ms")},
        "stacks": str(kept),
        **summarize(kept, sources),
    }


def profile_text(profile: dict) -> str:
    if "skipped" in profile:
        return f"profile: {profile['skipped']}"
    lines = [
        f"\nprofile (py-spy, hot event again: {profile['run']['rps']:.0f} req/s while sampled;"
        f" {profile['samples']} samples of {profile['workers']} workers' wall time, idle and"
        " waiting included):"
    ]
    lines.append("  where the time went:")
    lines.extend(f"    {r['pct']:5.1f}%  {r['phase']}" for r in profile["phases"])
    for title, key in (
        ("own time", "top_own"),
        ("inclusive, booking/", "booking_inclusive"),
        ("inclusive, all", "top_inclusive"),
    ):
        lines.append(f"  top by {title}:")
        lines.extend(f"    {r['pct']:5.1f}%  {r['function']}" for r in profile[key])
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
