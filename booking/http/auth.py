"""HTTP Basic for admin routes. No built-in password: unconfigured means closed."""

import hmac
import logging

from flask import Flask, current_app
from flask_httpauth import HTTPBasicAuth
from werkzeug.security import check_password_hash

from .errors import problem

log = logging.getLogger("booking.auth")

admin_auth = HTTPBasicAuth(realm="booking admin")


def warn_if_closed(app: Flask) -> None:
    """Say it when the server starts with no admin password (gunicorn.conf.py's
    on_starting): the admin routes will refuse every request. Not at every app
    creation: `flask admin-password` creates the app to generate the password."""
    if not (app.config.get("ADMIN_PASSWORD") or app.config.get("ADMIN_PASSWORD_HASH")):
        log.warning(
            "No ADMIN_PASSWORD, ADMIN_PASSWORD_FILE or ADMIN_PASSWORD_HASH configured:"
            " admin routes will refuse every request (`flask --app wsgi admin-password`"
            " generates one)."
        )


@admin_auth.verify_password
def verify_password(username: str, password: str) -> str | None:
    config = current_app.config
    expected_user = config.get("ADMIN_USERNAME") or ""
    plain = config.get("ADMIN_PASSWORD")
    hashed = config.get("ADMIN_PASSWORD_HASH")
    if not (plain or hashed) or not username or not password:
        return None
    # Both checks always run, so a wrong name takes as long as a wrong password.
    user_ok = hmac.compare_digest(username.encode(), expected_user.encode())
    if hashed:
        password_ok = check_password_hash(hashed, password)
    else:
        password_ok = hmac.compare_digest(password.encode(), plain.encode())
    return username if user_ok and password_ok else None


@admin_auth.error_handler
def unauthorized(status: int):
    # flask-httpauth adds WWW-Authenticate to whatever this returns.
    if status == 401:
        return problem(401, "Unauthorized", "Valid admin credentials are required (HTTP Basic).")
    return problem(status, "Forbidden", "Not allowed.")
