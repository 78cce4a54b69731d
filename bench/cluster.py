"""The hot event and many events on a 3-node Galera cluster, row lock, through one nginx.

Reuses the cluster and nginx the cluster tests start (tests/galera.py,
tests/proxies.py): three MariaDB Galera nodes on loopback, one gunicorn host per
node, nginx balancing over the three. Skipped when the Galera packages are missing.
The batch figures are of all three hosts' logs together.
"""

import os

import sqlalchemy as sa
from flask_migrate import upgrade

from . import scenarios
from .api import Api
from .server import Gunicorn

# booking.sales.locking's warning when error 1213 makes a row-lock batch run again.
RETRY_MESSAGE = "running the batch again"


def _migrate(url: str) -> None:
    from booking import MIGRATIONS, create_app

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "BOOKING_LOCK": "row",
            "LOG_FILE": "",
            "LOG_LEVEL": "ERROR",
        }
    )
    with app.app_context():
        upgrade(directory=MIGRATIONS)
    app.extensions["booking"].engine.dispose()


def _retries(servers: list[Gunicorn], marks: list[int]) -> list[int]:
    counts = []
    for server, mark in zip(servers, marks, strict=True):
        with open(server.log_file, "rb") as log:
            log.seek(mark)
            counts.append(log.read().decode(errors="replace").count(RETRY_MESSAGE))
    return counts


def _marks(servers: list[Gunicorn]) -> list[int]:
    return [os.path.getsize(s.log_file) if os.path.exists(s.log_file) else 0 for s in servers]


def run(ctx: scenarios.Context, password: str, workers: int, tmp: str, servers: list) -> dict:
    """Rows keyed 'cluster hot' and 'cluster many', or {} with a reason when skipped."""
    from tests.galera import GaleraCluster, missing_parts
    from tests.proxies import UpstreamsNginx

    if missing := missing_parts():
        ctx.say(f"cluster: skipped, missing {', '.join(missing)}")
        return {}
    cluster = GaleraCluster(size=3, database="booking_bench_cluster")
    rows: dict[str, dict] = {}
    hosts: list[Gunicorn] = []
    try:
        cluster.start()
        ctx.say(f"cluster: 3 Galera nodes up in {cluster.start_seconds:.1f} s")
        cluster.create_database(_migrate)
        for number in (1, 2, 3):
            log_dir = os.path.join(tmp, f"cluster-host{number}")
            os.makedirs(log_dir, exist_ok=True)
            host = Gunicorn(cluster.url(number), password, workers, log_dir, lock_mode="row")
            hosts.append(host)
            servers.append(host)  # so the CPU meter counts them while they run
            host.start()
        # Read back with causal reads, as the app does, so checks see every node's commits.
        engine = sa.create_engine(
            cluster.url(1), connect_args={"init_command": "SET SESSION wsrep_sync_wait = 1"}
        )
        with UpstreamsNginx([h.port for h in hosts]) as nginx:
            here = scenarios.Context(
                nginx.url, Api(nginx.url, password), engine, hosts[0],
                ctx.scale, ctx.meter, ctx.say, ctx.users, hosts=hosts,
            )  # fmt: skip
            for key, scenario, name in (
                ("cluster hot", scenarios.hot_event, "hot event, 3-node Galera, row lock"),
                ("cluster many", scenarios.many_events, "many events, 3-node Galera, row lock"),
            ):
                marks = _marks(hosts)
                rows[key] = scenario(here, name=name)
                per_host = _retries(hosts, marks)
                rows[key]["retries_1213"] = {"total": sum(per_host), "per_host": per_host}
                ctx.say(f"{name}: {sum(per_host)} retries on error 1213 {per_host}")
        engine.dispose()
    finally:
        for host in hosts:
            host.stop()
            servers.remove(host)
        cluster.stop()
    return rows
