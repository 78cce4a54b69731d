"""The Postman collection (docs/postman) as CI runs it: Newman against real gunicorn
(2 workers) on a fresh MariaDB database, twice against the same server, since a
client developer runs it again and again against theirs.

Newman comes from tests/node (`make node`); without node or Newman this skips, or
fails under CI=true.
"""

import json
import re
from pathlib import Path

import pytest

from booking.http.errors import _DOMAIN

from . import newman
from .conftest import ADMIN_PASSWORD, require_service, wipe
from .servers import Gunicorn

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "postman"
COLLECTION = DOCS / "booking.postman_collection.json"
ENVIRONMENT = DOCS / "local.postman_environment.json"
FOLDERS = [
    "Health",
    "Events",
    "Booking",
    "Changing an event",
    "Idempotent retries",
    "Offers",
    "Parties",
    "Checkout holds",
    "Scheduled on-sale",
    "History",
    "Webhooks",
    "Metrics",
    "Refusals",
]
# Problem types no request to a healthy server provokes on demand.
NOT_PROVOKED = {
    "idempotency-key-in-flight",  # a duplicate while the first runs in the same worker: a race
    "unavailable",  # 503: the database or the booking lock did not answer in time
    "conflict",  # 409: a constraint caught what the rules missed, i.e. a bug
}


def requests(items: list[dict]) -> list[dict]:
    """The collection's requests in run order (folders flattened)."""
    found = []
    for item in items:
        found.extend(requests(item["item"]) if "item" in item else [item])
    return found


def assertions_in(item: dict) -> int:
    """pm.test calls in an item's test scripts (every one runs unconditionally)."""
    return sum(
        "\n".join(event["script"]["exec"]).count("pm.test(")
        for event in item.get("event", [])
        if event["listen"] == "test"
    )


def test_the_collection_covers_every_problem_type_and_checks_every_request():
    collection = json.loads(COLLECTION.read_text(encoding="utf-8"))
    assert collection["info"]["schema"] == (
        "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    )
    assert [folder["name"] for folder in collection["item"]] == FOLDERS
    # Every type the API can answer: the rules' refusals, and errors.py's own problems.
    # A new one fails here until a request provokes it or NOT_PROVOKED says why not.
    source = (ROOT / "booking" / "http" / "errors.py").read_text(encoding="utf-8")
    own = set(re.findall(r'problem\(\s*\d+,\s*"[^"]*",\s*[^,]+,\s*"([a-z-]+)"\)', source))
    types = {slug for _, slug, _ in _DOMAIN.values()} | own
    assert types >= NOT_PROVOKED
    scripts = "\n".join(
        line
        for item in requests(collection["item"])
        for event in item["event"]
        for line in event["script"]["exec"]
    )
    unchecked = {
        slug
        for slug in types - NOT_PROVOKED
        if f'pm.expect(problem.type).to.eql("urn:booking:problem:{slug}")' not in scripts
    }
    assert not unchecked, "no request provokes and checks these problem types"
    for item in requests(collection["item"]):
        script = "\n".join(item["event"][-1]["script"]["exec"])
        assert item["event"][-1]["listen"] == "test", item["name"]
        assert "pm.response.to.have.status(" in script, item["name"]


@pytest.mark.mariadb
@pytest.mark.slow
def test_newman_runs_the_collection_twice_against_gunicorn_on_mariadb(mysql_database_url, tmp_path):
    try:
        newman.command()
    except newman.NewmanMissing as missing:
        require_service("Newman", missing)
    collection = json.loads(COLLECTION.read_text(encoding="utf-8"))
    items = requests(collection["item"])
    # The floor: each request's own tests, and the collection's on every answer.
    every_answer = sum(
        "\n".join(event["script"]["exec"]).count("pm.test(")
        for event in collection["event"]
        if event["listen"] == "test"
    )
    floor = sum(assertions_in(item) for item in items) + every_answer * len(items)
    wipe(mysql_database_url)
    with Gunicorn(
        mysql_database_url,
        ADMIN_PASSWORD,
        workers=2,
        output=tmp_path / "gunicorn.out",
        LOG_FILE=str(tmp_path / "booking.log"),
        LOG_LEVEL="WARNING",
        # What the collection expects of the server (docs/postman.md).
        RATE_LIMIT="off",
        WEBHOOK_ALLOW_PRIVATE="false",
        METRICS_TOKEN="",
    ) as server:
        for run in (1, 2):
            result = newman.run(
                COLLECTION,
                {"baseUrl": server.url, "adminPassword": ADMIN_PASSWORD},
                ENVIRONMENT,
            )
            stats = result.stats
            assert result.returncode == 0, f"run {run}:\n{result.failures()}"
            assert stats["assertions"]["failed"] == 0, result.failures()
            assert stats["testScripts"]["failed"] == 0, result.failures()
            assert stats["prerequestScripts"]["failed"] == 0, result.failures()
            assert stats["requests"]["failed"] == 0, result.failures()
            # Nothing skipped: every request ran once, in order, and every test ran.
            assert result.executed_item_ids() == [item["id"] for item in items]
            assert stats["requests"]["total"] >= len(items)
            assert stats["assertions"]["total"] >= floor, (stats["assertions"], floor)
