"""JSON logs, request ids, and the request log line.

One JSON object per line, to LOG_FILE and to stderr. Every line logged while a
request is served carries that request's id. A change's outcome (eventId,
userId, outcome, promotedUserId) rides on its request's line, set by the
blueprint with `note()`: one line per request keeps logging off the hot path.
"""

import functools
import logging
import os
import re
import sys
import time
import uuid
from logging.handlers import WatchedFileHandler

from flask import Flask, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

from .. import metrics
from ..sales import change_queue

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_OURS = "_booking_handler"  # marks handlers this module added, so a new app replaces them

log = logging.getLogger("booking.requests")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        "{asctime}{levelname}{name}{process}{message}{request_id}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure_logging(app: Flask) -> None:
    """Send the service's loggers to LOG_FILE and stderr as JSON lines."""
    formatter = json_formatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path := app.config.get("LOG_FILE"):
        handlers.append(_file_handler(path))
    root = logging.getLogger("booking")
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        setattr(handler, _OURS, True)
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    root.setLevel(app.config.get("LOG_LEVEL", "INFO").upper())
    root.propagate = False
    # Flask-Limiter reports storage outages on its own logger; keep them in the same stream.
    limiter_log = logging.getLogger("flask-limiter")
    limiter_log.handlers = [h for h in limiter_log.handlers if not getattr(h, _OURS, False)]
    for handler in handlers:
        limiter_log.addHandler(handler)
    limiter_log.propagate = False


def _file_handler(path: str) -> logging.Handler:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        # WatchedFileHandler reopens the file when logrotate moves it away.
        return WatchedFileHandler(path, encoding="utf-8")
    except OSError as error:
        raise SystemExit(
            f"booking: cannot write the log file {path!r} ({error.strerror}). "
            "Set LOG_FILE to a writable path."
        ) from None


def note(**fields) -> None:
    """Add fields to this request's log line."""
    g.log_fields = {**g.get("log_fields", {}), **fields}


@functools.cache
def route_template(rule: str) -> str:
    """A route as the spec writes it, /api/events/{eventId}: the label metrics and logs
    group by, without the converter's text (<int(min=1, ...):eventId>)."""
    return re.sub(r"<(?:[^<>:]+:)?(\w+)>", r"{\1}", rule)


def init_app(app: Flask) -> None:
    configure_logging(app)

    @app.before_request
    def start_request():
        g.started = time.perf_counter()
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = offered if _SANE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        change_queue.request_id.set(g.request_id)  # so a batch's log line can name its requests

    @app.after_request
    def finish_request(response):
        request_id = g.get("request_id") or uuid.uuid4().hex
        response.headers[REQUEST_ID_HEADER] = request_id
        if response.status_code not in (429, 503) and not getattr(
            response, "retry_after_meant", False
        ):
            # Flask-Limiter stamps Retry-After on every response; it means "wait"
            # only on a refusal.
            response.headers.pop("Retry-After", None)
        started = g.get("started")
        route = route_template(request.url_rule.rule) if request.url_rule else None
        if started:
            metrics.REQUEST_SECONDS.labels(
                route or "unmatched", request.method, response.status_code
            ).observe(time.perf_counter() - started)
        log.info(
            "request",
            extra={
                "method": request.method,
                "route": route,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3)
                if started
                else None,
                "client": request.remote_addr,
                **g.get("log_fields", {}),
            },
        )
        return response
