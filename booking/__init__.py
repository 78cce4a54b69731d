"""Event ticket booking service: `create_app` wires the layers together.

    http     the Flask face (blueprints, schemas, errors, auth, limits, logs)
    notify   the journal's reading side, webhooks, the worker
    sales    the domain and its one change path (rules, group commit, locks, lines)
    storage  tables, the engine's set-up, the SQL of each table
    config, metrics  beneath them all

Each layer imports only those below it (`make lint` checks it: setup.cfg's importlinter).
"""

import logging
import os

from flask import Flask

from . import cli, config
from . import http as web
from .extensions import api, db, migrate
from .notify.webhooks import Webhooks
from .sales import locking
from .sales.service import BookingService
from .sales.waiting_lists import WaitingLists
from .storage import database

log = logging.getLogger("booking")

MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    # 1. Settings: defaults and the environment, instance/config.py, then the tests'.
    app.config.from_mapping(config.from_environment(app.instance_path))
    app.config.from_pyfile("config.py", silent=True)
    if test_config:
        app.config.update(test_config)
    _derived_settings(app)
    os.makedirs(app.instance_path, exist_ok=True)

    # 2. Extensions and the web layer (routes, errors, auth, limits, logs).
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS)
    web.init_app(app, api)
    cli.init_app(app)

    # 3. The database's set-up, the lock strategy, the sales service and webhooks.
    with app.app_context():
        engine = db.engine
        mode = app.config["BOOKING_LOCK"]
        lock = locking.for_engine(engine, app.config["LOCK_TIMEOUT"], mode)
        database.configure(engine, app.config["LOCK_TIMEOUT"], lock.name)
        if lock.name == "table":
            try:
                database.check_not_galera(engine)
            except database.GaleraTableLockError as error:
                raise SystemExit(f"booking: {error}") from None
        app.extensions["booking"] = BookingService(
            engine,
            lock,
            WaitingLists(app.config["WAITLIST_CACHE_EVENTS"]),
            max_size=app.config["BATCH_MAX_SIZE"],
            max_hold=app.config["BATCH_MAX_HOLD_MS"] / 1000,
        )
        app.extensions["webhooks"] = Webhooks(engine, app.config["WEBHOOK_ALLOW_PRIVATE"])
    return app


def _derived_settings(app: Flask) -> None:
    cfg = app.config
    cfg.setdefault("WAITLIST_CACHE_EVENTS", 1024)
    cfg.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS",
        database.engine_options(
            cfg["SQLALCHEMY_DATABASE_URI"], cfg["LOCK_TIMEOUT"], cfg["DB_POOL_SIZE"]
        ),
    )
    cfg.update(
        API_TITLE="Event ticket booking",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # Served by the app itself (http/__init__.py), so the docs work offline.
        OPENAPI_SWAGGER_UI_URL="/api/docs/assets/",
    )
