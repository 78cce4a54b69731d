"""Event ticket booking service."""

import logging
import os

from flask import Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from . import (
    auth,
    cli,
    config,
    database,
    errors,
    headers,
    health,
    locking,
    metrics_api,
    observability,
    ratelimit,
)
from .api import blp
from .extensions import api, db, migrate
from .notifications import blp as notifications_blp
from .service import BookingService
from .waitlist import WaitingLists
from .webhooks import Webhooks

log = logging.getLogger("booking")

MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(config.from_environment(app.instance_path))
    app.config.from_pyfile("config.py", silent=True)
    if test_config:
        app.config.update(test_config)
    _derived_settings(app)
    os.makedirs(app.instance_path, exist_ok=True)

    # Before the limiter: after_request hooks run last-registered first, and the
    # request log must see the limiter's headers.
    observability.init_app(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS)
    ratelimit.init_app(app)
    api.init_app(app)
    api.spec.components.security_scheme("basicAuth", {"type": "http", "scheme": "basic"})
    api.register_blueprint(blp)
    api.register_blueprint(notifications_blp)
    api.register_blueprint(health.blp)
    # flask-smorest registers these whether or not anything uses them; nothing here does.
    for unused in ("Error", "PaginationMetadata"):
        api.spec.components.schemas.pop(unused, None)
    app.register_blueprint(metrics_api.bp)  # plain Flask: not part of the API's spec
    # marshmallow cannot say it; the spec must, or clients (and fuzzers) send {}.
    api.spec.components.schemas["EventChangeRequest"]["minProperties"] = 1
    _serve_docs_assets(app)
    errors.register(app)  # after api.init_app, so ours replace flask-smorest's handlers
    auth.init_app(app)
    headers.init_app(app)
    cli.init_app(app)

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
        # Served by the app itself (below), so the docs work offline.
        OPENAPI_SWAGGER_UI_URL="/api/docs/assets/",
    )


def _serve_docs_assets(app: Flask) -> None:
    @app.get("/api/docs/assets/<path:filename>")
    def docs_assets(filename):
        return send_from_directory(swagger_ui_path, filename, max_age=86400)
