"""Flask CLI commands: `flask --app wsgi admin-password`, `flask --app wsgi worker`."""

import os
import secrets
import signal
from pathlib import Path

import click
from flask import Flask, current_app

from .notify.worker import Settings, Worker


def init_app(app: Flask) -> None:
    app.cli.add_command(admin_password)
    app.cli.add_command(worker)


@click.command("worker")
@click.option("--once", is_flag=True, help="Run one pass (sequence, deliver, purge) and exit.")
def worker(once: bool) -> None:
    """Settle lapsed offers, deliver webhooks, keep the journal; until SIGTERM or SIGINT."""
    service = current_app.extensions["booking"]
    running = Worker(service.engine, Settings.of(current_app.config), service)
    # Stop between attempts: the one in progress is finished and recorded first.
    signal.signal(signal.SIGTERM, running.stop)
    signal.signal(signal.SIGINT, running.stop)
    running.run(once=once)


@click.command("admin-password")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False),
    help="Where to keep it (default: instance/admin-password).",
)
def admin_password(path: str | None) -> None:
    """Generate the admin password into a file on first use; say where it is."""
    target = Path(path or Path(current_app.instance_path) / "admin-password")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 from the start: no moment when others could read it.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(secrets.token_urlsafe(18) + "\n")
        click.echo(f"Generated an admin password in {target}")
    user = current_app.config.get("ADMIN_USERNAME") or "admin"
    click.echo(f"Admin routes: HTTP Basic, user '{user}', password in {target.resolve()}")
