"""Fixtures: the app on SQLite and on MariaDB, each migrated once per session.

MariaDB comes from TEST_MYSQL_URL (default: root@127.0.0.1:3306). Each session
makes its own database and drops it afterwards. Where the server cannot be
reached the MariaDB tests skip, except under CI=true, where they fail.
"""

import base64
import contextlib
import os
import tempfile
import uuid

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from booking import MIGRATIONS, create_app

MYSQL_SERVER_URL = os.environ.get(
    "TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"
)
ADMIN_PASSWORD = "test-" + uuid.uuid4().hex
LOG_FILE = os.path.join(tempfile.gettempdir(), f"booking-tests-{os.getpid()}.log")
TABLES = (
    "waiting_list_changes",
    "webhook_deliveries",
    "webhooks",
    "journal_entries",
    "idempotency_keys",
    "offers",
    "waiting_list_entries",
    "bookings",
    "queue_entries",
    "events",
)


def _settings(url: str, **extra) -> dict:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "RATE_LIMIT": "off",
        "LOCK_TIMEOUT": 5,
        "LOG_FILE": LOG_FILE,
        **extra,
    }


def migrate(url: str) -> None:
    app = create_app(_settings(url))
    with app.app_context():
        upgrade(directory=MIGRATIONS)
    app.extensions["booking"].engine.dispose()


@contextlib.contextmanager
def scratch_database(server_url, prefix: str):
    """A new, migrated database on the MariaDB server, dropped afterwards."""
    server = sa.make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin_engine = sa.create_engine(server)
    try:
        with admin_engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    except sa.exc.OperationalError as error:
        require_service(f"MariaDB at {server.render_as_string()}", error.orig)
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        with admin_engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin_engine.dispose()


@pytest.fixture(scope="session")
def mysql_database_url():
    """A fresh, migrated database for the session's MariaDB tests."""
    with scratch_database(MYSQL_SERVER_URL, "booking_test") as url:
        yield url


@pytest.fixture
def fresh_mysql_url(mysql_database_url):
    """A database of its own, migrated and empty (ids start at 1), dropped afterwards."""
    with scratch_database(mysql_database_url, "booking_fresh") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_database_url(tmp_path_factory):
    url = "sqlite:///" + str(tmp_path_factory.mktemp("db") / "booking.sqlite3")
    migrate(url)
    return url


# Each backend: the database fixture and the booking lock mode (BOOKING_LOCK).
BACKENDS = {
    "sqlite": ("sqlite_database_url", "table"),
    "mariadb": ("mysql_database_url", "table"),
    "mariadb-row": ("mysql_database_url", "row"),
}


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("mariadb-row", marks=pytest.mark.mariadb),
    ]
)
def backend(request):
    return request.param


@pytest.fixture
def database_url(request, backend):
    return request.getfixturevalue(BACKENDS[backend][0])


@pytest.fixture(params=["table", "row"])
def lock_mode(request):
    """For tests that start gunicorn on MariaDB: run them in both lock modes."""
    return request.param


def wipe(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in TABLES:
            conn.exec_driver_sql(f"DELETE FROM {table}")
    engine.dispose()


@pytest.fixture
def settings(database_url, backend):
    wipe(database_url)
    return _settings(database_url, BOOKING_LOCK=BACKENDS[backend][1])


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.extensions["booking"].engine.dispose()


@pytest.fixture
def rows(app):
    """How many rows a table holds now, read straight from the database."""

    def count(table: str) -> int:
        with app.extensions["booking"].engine.connect() as conn:
            return conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one()

    return count


@pytest.fixture
def client(app):
    return app.test_client()


def basic_auth(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def admin():
    return basic_auth("admin", ADMIN_PASSWORD)


def initialize(url: str, name: str, total: int) -> int:
    """Create an event through a running server's HTTP API; its id."""
    import httpx

    response = httpx.post(
        f"{url}/api/events/initialize",
        json={"eventName": name, "totalTickets": total},
        headers=basic_auth("admin", ADMIN_PASSWORD),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["eventId"]


def require_service(name: str, error: Exception) -> None:
    """A needed server is unreachable: skip locally, fail under CI."""
    message = f"{name} is unreachable: {error}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url():
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        require_service("Redis", error)
    return url


@pytest.fixture(scope="session")
def galera_cluster():
    """A 3-node MariaDB Galera cluster on loopback (tests/galera.py), with a migrated
    `booking_cluster` database; every node is stopped by its PID at the end.

    Needs mariadb-server, galera-4 and rsync: without them the tests skip, or
    fail under CI=true.
    """
    from .galera import GaleraCluster, missing_parts

    if missing := missing_parts():
        require_service("A Galera cluster", FileNotFoundError("missing " + ", ".join(missing)))

    def migrate_row_mode(url: str) -> None:
        # As migrate() does, but in row mode: table mode refuses a Galera node.
        app = create_app(_settings(url, BOOKING_LOCK="row"))
        with app.app_context():
            upgrade(directory=MIGRATIONS)
        app.extensions["booking"].engine.dispose()

    cluster = GaleraCluster(size=3)
    try:
        cluster.start()
        cluster.create_database(migrate_row_mode)
        yield cluster
    finally:
        cluster.stop()
