"""A clean start: gunicorn listens on loopback unless told otherwise, and the first run
says only what is true (no "admin routes will refuse every request" just before the
password that opens them is generated)."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from booking import create_app

ROOT = Path(__file__).resolve().parent.parent
CLOSED = "admin routes will refuse every request"


def gunicorn_bind(**env) -> str:
    """gunicorn.conf.py's bind, read in a process of its own (the file sets up metrics)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "GUNICORN_BIND")}
    code = "import runpy; print(runpy.run_path('gunicorn.conf.py')['bind'])"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return run.stdout.strip()


@pytest.mark.parametrize(
    "env, bind",
    [
        ({}, "127.0.0.1:3000"),
        ({"PORT": "3741"}, "127.0.0.1:3741"),
        ({"HOST": "0.0.0.0", "PORT": "3742"}, "0.0.0.0:3742"),
        ({"HOST": "0.0.0.0", "GUNICORN_BIND": "unix:/run/booking.sock"}, "unix:/run/booking.sock"),
    ],
)
def test_gunicorn_listens_on_loopback_unless_told_otherwise(env, bind):
    assert gunicorn_bind(**env) == bind


def test_the_systemd_unit_says_where_it_listens():
    unit = (ROOT / "deploy" / "booking.service").read_text()
    assert "Environment=HOST=127.0.0.1" in unit


def test_generating_the_admin_password_does_not_first_warn_there_is_none(tmp_path):
    password = tmp_path / "admin-password"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADMIN_PASSWORD")}
    env.update(ADMIN_PASSWORD_FILE=str(password), DATABASE_URL=f"sqlite:///{tmp_path}/x.db",
               LOG_FILE="", FLASK_APP="wsgi")  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "flask", "admin-password", "--file", str(password)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    said = run.stdout + run.stderr
    assert CLOSED not in said, said
    assert said.count("Generated an admin password") == 1, said
    assert password.read_text().strip()


def test_a_server_without_any_admin_password_says_so_once(settings, caplog):
    from booking.http import auth

    closed = create_app({**settings, "ADMIN_PASSWORD": None, "ADMIN_PASSWORD_HASH": None})
    opened = create_app(settings)
    # The service's loggers do not propagate (request_log.py): listen on its own.
    logging.getLogger("booking.auth").addHandler(caplog.handler)
    try:
        auth.warn_if_closed(opened)
        assert CLOSED not in caplog.text
        auth.warn_if_closed(closed)
    finally:
        logging.getLogger("booking.auth").removeHandler(caplog.handler)
    assert caplog.text.count(CLOSED) == 1
