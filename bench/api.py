"""A small synchronous client of the booking API, for set-up and checks (not for load)."""

import base64
import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from .server import is_loopback


class ApiError(RuntimeError):
    pass


class Api:
    def __init__(self, base_url: str, admin_password: str, admin_user: str = "admin"):
        if not is_loopback(urlsplit(base_url).hostname):
            raise ValueError(f"the benchmark only talks to loopback, not {base_url}")
        self.base_url = base_url
        token = base64.b64encode(f"{admin_user}:{admin_password}".encode()).decode()
        self.admin_headers = {"Authorization": f"Basic {token}"}

    def call(
        self, method: str, path: str, body: dict | None = None, admin: bool = False
    ) -> tuple[int, object]:
        headers = dict(self.admin_headers) if admin else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def initialize(self, name: str, total_tickets: int, **settings) -> int:
        """A new event; `settings` are the API's own names (maxTicketsPerBooking=6)."""
        status, body = self.call(
            "POST",
            "/api/events/initialize",
            {"eventName": name, "totalTickets": total_tickets, **settings},
            admin=True,
        )
        if status != 201:
            raise ApiError(f"initialize {name!r}: {status} {body}")
        return body["eventId"]

    def status(self, event_id: int) -> dict:
        status, body = self.call("GET", f"/api/events/status/{event_id}")
        if status != 200:
            raise ApiError(f"status of event {event_id}: {status} {body}")
        return body

    def waiting_list(self, event_id: int) -> list[int]:
        status, body = self.call("GET", f"/api/events/{event_id}/waiting-list", admin=True)
        if status != 200:
            raise ApiError(f"waiting list of event {event_id}: {status} {body}")
        return body["userIds"]

    def waiting_entries(self, event_id: int) -> list[tuple[int, int, int]]:
        """(userId, tickets, overtakes) of each waiting party, in line order."""
        status, body = self.call("GET", f"/api/events/{event_id}/waiting-list", admin=True)
        if status != 200:
            raise ApiError(f"waiting list of event {event_id}: {status} {body}")
        return [(e["userId"], e["tickets"], e["overtakes"]) for e in body["entries"]]
