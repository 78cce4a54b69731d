"""Per-client rate limits with Flask-Limiter, shared across workers through Redis."""

import logging
import os

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

from . import limit_storage  # noqa: F401  (memory:// without a thread per hit)

log = logging.getLogger("booking.ratelimit")
OFF = ("off", "0", "false", "none", "")


def init_app(app: Flask) -> None:
    cfg = app.config
    limit = str(cfg.get("RATE_LIMIT") or "off").strip()
    storage = cfg.get("RATELIMIT_STORAGE_URI") or "memory://"
    cfg.update(
        RATELIMIT_ENABLED=limit.lower() not in OFF,
        RATELIMIT_DEFAULT=limit,
        RATELIMIT_STORAGE_URI=storage,
        RATELIMIT_HEADERS_ENABLED=True,
        # Storage down: keep serving on per-worker in-memory limits, warn once per
        # outage ("falling back" ... "recovered"), never answer 500.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_IN_MEMORY_FALLBACK=limit,
        RATELIMIT_SWALLOW_ERRORS=True,
    )
    if storage.startswith("redis"):
        cfg.setdefault(
            "RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
        )
    # Behind N trusted proxies the client is the Nth address from the right of
    # X-Forwarded-For; with 0 the header is ignored, so clients cannot spoof it.
    proxies = int(cfg.get("TRUSTED_PROXY_COUNT") or 0)
    if proxies > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    # One Limiter per app: its fallback limits and storage are per app too.
    limiter = Limiter(key_func=get_remote_address)
    limiter.request_filter(_not_rate_limited)
    limiter.init_app(app)
    workers = int(os.environ.get("WEB_CONCURRENCY", "1") or 1)
    if cfg["RATELIMIT_ENABLED"] and storage.startswith("memory") and workers > 1:
        log.warning(
            "RATELIMIT_STORAGE_URI is memory:// with %d workers: each worker counts on its"
            " own, so a client may make up to %d times '%s'. Use redis:// to share it.",
            workers,
            workers,
            limit,
        )


def _not_rate_limited() -> bool:
    """Only the API is limited; health checks and the docs' static files never are."""
    path = request.path
    return not path.startswith("/api/") or path.startswith("/api/docs/assets/")
