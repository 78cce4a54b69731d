"""GET /metrics: the Prometheus text format, for the whole server in one scrape.

Never rate limited (http/ratelimit.py limits /api/ only). With METRICS_TOKEN set it
needs `Authorization: Bearer <METRICS_TOKEN>`; deploy/nginx.conf keeps the path
off the public server either way.
"""

import hmac
import logging

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from .. import metrics
from .errors import problem

log = logging.getLogger("booking.metrics")

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape():
    token = current_app.config.get("METRICS_TOKEN")
    if token and not hmac.compare_digest(
        request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
    ):
        response = problem(401, "Unauthorized", "Send Authorization: Bearer <METRICS_TOKEN>.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = metrics.exposition(_database_figures)
    return Response(body, content_type=content_type)


def _database_figures() -> tuple[dict[str, int], float | None, int]:
    """The figures read from the database (notify/webhooks.py); nothing if it does not
    answer (the process's own metrics are still worth a scrape)."""
    try:
        return current_app.extensions["webhooks"].figures()
    except SQLAlchemyError as error:
        log.warning("metrics: the database did not answer", extra={"error": repr(error)})
        return {}, None, 0
