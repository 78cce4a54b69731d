"""`make postman`: run the Postman collection (docs/postman) with Newman, from a shell.

    make postman                                  # a throwaway server, stopped afterwards
    make postman BASE_URL=http://127.0.0.1:3000   # a running one, e.g. `RATE_LIMIT=off make run`

Without BASE_URL it starts gunicorn (2 workers) on a temporary SQLite database with
RATE_LIMIT=off and a random admin password, and removes both afterwards. With
BASE_URL the admin password is ADMIN_PASSWORD, else the file ADMIN_PASSWORD_FILE or
instance/admin-password names (what `make run` creates). Exits with Newman's status.
"""

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from . import newman
from .servers import ROOT, Gunicorn

DOCS = ROOT / "docs" / "postman"
COLLECTION = DOCS / "booking.postman_collection.json"
ENVIRONMENT = DOCS / "local.postman_environment.json"


def admin_password() -> str:
    if password := os.environ.get("ADMIN_PASSWORD"):
        return password
    path = Path(os.environ.get("ADMIN_PASSWORD_FILE") or ROOT / "instance" / "admin-password")
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        sys.exit(f"postman: no admin password: {path} is missing and ADMIN_PASSWORD is unset")


def run_collection(base_url: str, password: str) -> int:
    print(f"postman: running {COLLECTION.relative_to(ROOT)} against {base_url}", flush=True)
    settings = {"baseUrl": base_url, "adminPassword": password}
    return newman.run(COLLECTION, settings, ENVIRONMENT, capture=False).returncode


def on_a_throwaway_server() -> int:
    with tempfile.TemporaryDirectory(prefix="booking-postman-") as tmp:
        database_url = f"sqlite:///{tmp}/booking.sqlite3"
        migrated = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            check=False,
        )
        if migrated.returncode != 0:
            sys.exit(f"postman: migrating {database_url} failed\n{migrated.stderr}")
        password = secrets.token_urlsafe(24)
        server = Gunicorn(
            database_url,
            password,
            workers=2,
            output=Path(tmp) / "gunicorn.out",
            LOG_FILE=str(Path(tmp) / "booking.log"),
            LOG_LEVEL="WARNING",
            RATE_LIMIT="off",
            WEBHOOK_ALLOW_PRIVATE="false",
            METRICS_TOKEN="",
        )
        with server:
            print(f"postman: gunicorn on {server.url}, SQLite in {tmp}", flush=True)
            return run_collection(server.url, password)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="a running server; else start a throwaway one")
    args = parser.parse_args()
    try:
        newman.command()
    except newman.NewmanMissing as missing:
        sys.exit(f"postman: {missing}")
    if args.base_url:
        status = run_collection(args.base_url.rstrip("/"), admin_password())
    else:
        status = on_a_throwaway_server()
    sys.exit(status)


if __name__ == "__main__":
    main()
