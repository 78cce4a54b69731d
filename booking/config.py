"""Settings, read once at start-up from the environment.

Precedence, lowest first: these defaults and environment variables, then
instance/config.py, then the mapping passed to create_app (tests).
"""

import os
from pathlib import Path
from urllib.parse import quote_plus


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def database_url(instance_path: str) -> str:
    """DATABASE_URL wins; else a MySQL URL from DB_*; else SQLite under instance/."""
    if url := os.environ.get("DATABASE_URL"):
        return url
    if host := os.environ.get("DB_HOST"):
        user = quote_plus(os.environ.get("DB_USER", "root"))
        password = os.environ.get("DB_PASSWORD", "")
        auth = f"{user}:{quote_plus(password)}" if password else user
        port = _int("DB_PORT", 3306)
        name = os.environ.get("DB_NAME", "booking")
        return f"mysql+pymysql://{auth}@{host}:{port}/{name}?charset=utf8mb4"
    return "sqlite:///" + str(Path(instance_path) / "booking.sqlite3")


def _admin_password(instance_path: str) -> str | None:
    if password := os.environ.get("ADMIN_PASSWORD"):
        return password
    # A file keeps the secret out of the process environment and shell history;
    # `make run` generates instance/admin-password on first start.
    path = Path(os.environ.get("ADMIN_PASSWORD_FILE") or Path(instance_path) / "admin-password")
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def from_environment(instance_path: str) -> dict:
    return {
        "PORT": _int("PORT", 3000),
        "SQLALCHEMY_DATABASE_URI": database_url(instance_path),
        "ADMIN_USERNAME": os.environ.get("ADMIN_USERNAME", "admin"),
        "ADMIN_PASSWORD": _admin_password(instance_path),
        "ADMIN_PASSWORD_HASH": os.environ.get("ADMIN_PASSWORD_HASH") or None,
        # table: LOCK TABLES (one MySQL/MariaDB server); row: row locks with
        # retries (Galera and other clusters). SQLite always uses BEGIN IMMEDIATE.
        "BOOKING_LOCK": os.environ.get("BOOKING_LOCK", "table").strip().lower(),
        # Seconds a change may wait for the booking lock before the client gets 503.
        "LOCK_TIMEOUT": _int("LOCK_TIMEOUT", 5),
        # Group commit: the most changes one transaction runs, and how long a batch
        # may keep taking changes before the rest wait for the next one.
        "BATCH_MAX_SIZE": _int("BATCH_MAX_SIZE", 64),
        # Seconds an Idempotency-Key's answer is kept; after that the key is new again.
        "IDEMPOTENCY_TTL": _int("IDEMPOTENCY_TTL", 24 * 3600),
        # Database connections a worker keeps: one per gunicorn thread.
        "DB_POOL_SIZE": _int("DB_POOL_SIZE", _int("GUNICORN_THREADS", 16)),
        "BATCH_MAX_HOLD_MS": _int("BATCH_MAX_HOLD_MS", 50),
        # The journal and webhooks (seconds). Entries older than JOURNAL_RETENTION
        # go once every enabled webhook has them.
        "JOURNAL_RETENTION": _int("JOURNAL_RETENTION", 30 * 24 * 3600),
        "WEBHOOK_RETRY_BASE": _float("WEBHOOK_RETRY_BASE", 5.0),
        "WEBHOOK_RETRY_CAP": _float("WEBHOOK_RETRY_CAP", 3600.0),
        "WEBHOOK_MAX_AGE": _float("WEBHOOK_MAX_AGE", 3 * 24 * 3600.0),
        "WEBHOOK_LEASE": _float("WEBHOOK_LEASE", 30.0),
        # Let webhooks reach loopback and private networks (development only).
        "WEBHOOK_ALLOW_PRIVATE": _bool("WEBHOOK_ALLOW_PRIVATE", False),
        "WORKER_POLL_INTERVAL": _float("WORKER_POLL_INTERVAL", 0.25),
        # When set, GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>".
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN") or None,
        "RATE_LIMIT": os.environ.get("RATE_LIMIT", "100 per 15 minutes"),
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_KEY_PREFIX": os.environ.get("RATELIMIT_KEY_PREFIX", "booking"),
        "TRUSTED_PROXY_COUNT": _int("TRUSTED_PROXY_COUNT", 0),
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 16 * 1024),
        "LOG_FILE": os.environ.get("LOG_FILE", "logs/booking.log"),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
    }
