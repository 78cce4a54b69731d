"""Liveness and readiness, for load balancers and orchestrators; their own tag in the spec."""

from ..storage import database
from . import examples
from .parsing import Blueprint
from .responses import HealthSchema
from .routing import problems, service

blp = Blueprint("health", __name__, description="Liveness and readiness (no auth, never limited)")


@blp.get("/healthz")
@blp.response(200, HealthSchema, example=examples.HEALTHY)
@blp.doc(summary="Liveness: the process serves requests")
def healthz():
    return {"status": "ok"}


@blp.get("/readyz")
@blp.response(200, HealthSchema, example=examples.READY)
@blp.doc(summary="Readiness: the database answers")
@problems(503)
def readyz():
    database.ping(service().engine)  # a failure becomes 503 problem+json with Retry-After
    return {"status": "ready"}
