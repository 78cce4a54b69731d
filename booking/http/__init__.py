"""The Flask face: blueprints per resource, schemas and the spec's examples, problem+json,
parsing, auth, rate limit, security headers and the request log.

May import every layer below it (notify, sales, storage, config, metrics); nothing below
imports it, and only this layer and the top (create_app, cli) import Flask.
"""

from flask import Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from . import errors, events, headers, health, metrics, notifications, ratelimit, request_log


def init_app(app: Flask, api) -> None:
    """The web layer onto `app`, its documented routes onto `api` (flask-smorest)."""
    # Before the limiter: after_request hooks run last-registered first, and the
    # request log must see the limiter's headers.
    request_log.init_app(app)
    ratelimit.init_app(app)
    api.init_app(app)
    api.spec.components.security_scheme("basicAuth", {"type": "http", "scheme": "basic"})
    api.register_blueprint(events.blp)
    api.register_blueprint(notifications.blp)
    api.register_blueprint(health.blp)
    # flask-smorest registers these whether or not anything uses them; nothing here does.
    for unused in ("Error", "PaginationMetadata"):
        api.spec.components.schemas.pop(unused, None)
    app.register_blueprint(metrics.bp)  # plain Flask: not part of the API's spec
    # marshmallow cannot say it; the spec must, or clients (and fuzzers) send {}.
    api.spec.components.schemas["EventChangeRequest"]["minProperties"] = 1
    _serve_docs_assets(app)
    errors.register(app)  # after api.init_app, so ours replace flask-smorest's handlers
    headers.init_app(app)


def _serve_docs_assets(app: Flask) -> None:
    @app.get("/api/docs/assets/<path:filename>")
    def docs_assets(filename):
        return send_from_directory(swagger_ui_path, filename, max_age=86400)
