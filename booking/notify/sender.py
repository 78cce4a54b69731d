"""Sending: a journal entry POSTed to a webhook, signed (Standard Webhooks).

The body is {type, timestamp, data}; the headers are webhook-id (the entry id,
the same on every retry, so a receiver can drop what it already has),
webhook-timestamp (this attempt, Unix seconds) and webhook-signature, made by
the `standardwebhooks` package: "v1," + base64 HMAC-SHA256 of
"id.timestamp.body" under the webhook's secret.
"""

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import urllib3
from standardwebhooks.webhooks import Webhook

from ..sales.domain import rfc3339
from ..storage import journal
from . import destinations

TIMEOUT_SECONDS = 5.0
KEPT_BODY_BYTES = 1024
USER_AGENT = "booking-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int
    body: str | None  # the receiver's first KiB

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def body(row) -> str:
    """The JSON body for a journal row: the same bytes on every attempt."""
    entry = journal.entry(row)
    data = {
        "entryId": entry["entry_id"],
        "eventId": entry["event_id"],
        "userId": entry["user_id"],
        **entry["data"],
    }
    payload = {"type": entry["type"], "timestamp": rfc3339(entry["at"]), "data": data}
    return json.dumps(payload, separators=(",", ":"))


class Sender:
    """Sends attempts, keeping one kept-alive connection per checked destination, so a
    run of entries to one receiver does not pay a TCP (and TLS) handshake each."""

    def __init__(self, allow_private: bool):
        self.allow_private = allow_private
        self._pools: dict[tuple, urllib3.HTTPConnectionPool] = {}

    def __enter__(self) -> "Sender":
        return self

    def __exit__(self, *exc) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    def send(self, url: str, secret: str, entry_id: int, payload: str) -> Outcome:
        """POST once; never raises for the receiver's or the network's failures."""
        started = time.monotonic()
        try:
            # Resolved and checked again for every attempt (see destinations.py).
            where = destinations.resolve(url, self.allow_private)
        except destinations.RefusedDestination as refused:
            return Outcome(None, f"refused: {refused}", _ms(started), None)
        key = (where.scheme, where.host, where.port, where.address)
        if key not in self._pools:
            self._pools[key] = _pool(where)
        return _post(self._pools[key], where, secret, entry_id, payload, started)


def _post(pool, where, secret: str, entry_id: int, payload: str, started: float) -> Outcome:
    now = datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Host": _host_header(where),
        "webhook-id": str(entry_id),
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(str(entry_id), now, payload),
    }
    try:
        response = pool.urlopen(
            "POST",
            where.target,
            body=payload.encode(),
            headers=headers,
            redirect=False,  # a redirect is an answer, not an instruction
            retries=False,
            preload_content=False,
            assert_same_host=False,
            timeout=urllib3.Timeout(total=TIMEOUT_SECONDS),
        )
        try:
            kept = response.read(KEPT_BODY_BYTES).decode("utf-8", "replace")
        finally:
            if response.length_remaining == 0:
                response.release_conn()  # read to the end: the connection can be reused
            else:
                response.close()  # a longer (or unsized) body is not ours to read
        return Outcome(response.status, None, _ms(started), kept)
    except urllib3.exceptions.HTTPError as error:
        return Outcome(None, f"{type(error).__name__}: {error}"[:1024], _ms(started), None)


def _pool(where: destinations.Destination):
    """A connection to the address that was checked, not to whatever the name says now."""
    if where.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            where.address,
            where.port,
            maxsize=1,
            server_hostname=where.host,
            assert_hostname=where.host,
            cert_reqs="CERT_REQUIRED",
        )
    return urllib3.HTTPConnectionPool(where.address, where.port, maxsize=1)


def _host_header(where: destinations.Destination) -> str:
    host = f"[{where.host}]" if ":" in where.host else where.host
    default = 443 if where.scheme == "https" else 80
    return host if where.port == default else f"{host}:{where.port}"


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
