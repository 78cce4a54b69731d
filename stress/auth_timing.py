"""Does a failed admin login take as long for an unknown user as for a wrong password?

Measured in-process through the Flask test client (no network noise), with the
password configured as a werkzeug hash, as docs/configuration.md recommends, and as plain
text. Requests alternate between the two cases so machine noise hits both.
"""

import base64
import statistics
import tempfile
import time
from pathlib import Path

from werkzeug.security import generate_password_hash

from booking import create_app

ROUNDS = 200


def _header(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _timings(client, headers: dict) -> float:
    started = time.perf_counter()
    response = client.get("/api/events/1/waiting-list", headers=headers)
    elapsed = time.perf_counter() - started
    assert response.status_code == 401, response.status_code
    return elapsed


def measure() -> list[dict]:
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="booking-auth-timing-"))
    for label, secrets in (
        (
            "werkzeug hash",
            {"ADMIN_PASSWORD": None, "ADMIN_PASSWORD_HASH": generate_password_hash("right")},
        ),
        ("plain password", {"ADMIN_PASSWORD": "right", "ADMIN_PASSWORD_HASH": None}),
    ):
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir}/auth.sqlite3",
                "RATE_LIMIT": "off",
                "LOG_FILE": str(workdir / "auth.log"),
                "LOG_LEVEL": "ERROR",
                "ADMIN_USERNAME": "admin",
                **secrets,
            }
        )
        client = app.test_client()
        unknown_user, wrong_password = [], []
        for _ in range(ROUNDS):
            unknown_user.append(_timings(client, _header("mallory", "guess")))
            wrong_password.append(_timings(client, _header("admin", "guess")))
        a, b = statistics.median(unknown_user), statistics.median(wrong_password)
        rows.append(
            {
                "secret": label,
                "unknown_user_ms": round(a * 1000, 3),
                "wrong_password_ms": round(b * 1000, 3),
                "ratio": round(a / b, 3),
            }
        )
    return rows


def text(rows: list[dict]) -> str:
    lines = [
        f"admin login timing (medians of {ROUNDS} failed logins each, alternating):",
        "| secret | unknown user ms | wrong password ms | ratio |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['secret']} | {r['unknown_user_ms']} | {r['wrong_password_ms']} | {r['ratio']} |"
        for r in rows
    ]
    return "\n".join(lines)
