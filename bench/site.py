"""A benchmark's site: a migrated scratch database and a warmed-up gunicorn on it, and the
progress line every scenario prints (shared by `python -m bench` and its dashboard)."""

import os
import secrets
import sys
import time
from pathlib import Path

from . import load, scenarios
from .api import Api
from .server import Database, Gunicorn

RESULTS = Path(__file__).resolve().parent / "results"


def say(message: str, started: float = time.perf_counter()) -> None:
    print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


def verify_target(db: Database, api: Api) -> int:
    """The server must write to our database (an instance/config.py could point elsewhere)."""
    name = f"bench probe {secrets.token_hex(4)}"
    event_id = api.initialize(name, 1)
    with db.engine.connect() as conn:
        found = conn.exec_driver_sql("SELECT name FROM events WHERE id = %s", (event_id,)).scalar()
    if found != name:
        raise SystemExit(
            f"bench: the server did not write to {db.name} (instance/config.py overrides"
            " DATABASE_URL?); refusing to go on"
        )
    return event_id


def start_site(
    database, password, workers, tmp, scale, meter, setup, servers, lock_mode="table", env=None
):
    """A migrated scratch database and a gunicorn on it (`env`: settings of its own, e.g.
    LOCK_TIMEOUT), warmed up; its scenario context."""
    say(f"database {database.name}: drop, create, migrate")
    log_dir = os.path.join(tmp, database.name)
    os.makedirs(log_dir, exist_ok=True)
    created = database.create(os.path.join(log_dir, "migrate.log"))
    setup[f"{database.name}_database_s"] = round(created, 2)
    server = Gunicorn(database.url_string, password, workers, log_dir, lock_mode, env)
    servers.append(server)
    setup[f"{database.name}_gunicorn_start_s"] = round(server.start(), 2)
    say(f"gunicorn on {server.url}: master {server.master_pid}, workers {server.worker_pids()}")
    api = Api(server.url, password)
    probe = verify_target(database, api)
    # Every worker serves a few requests of each kind before anything is measured.
    load.run(server.url, [load.get("/healthz"), scenarios.status(probe)] * 200, scale.concurrency)
    return scenarios.Context(server.url, api, database.engine, server, scale, meter, say)
