"""Migrations on data that is already there, as an operator upgrades a running install."""

import sqlalchemy as sa
from flask_migrate import upgrade

from booking import MIGRATIONS, create_app

from .conftest import ADMIN_PASSWORD, _settings, basic_auth

ADMIN = basic_auth("admin", ADMIN_PASSWORD)


def test_webhook_ids_are_never_reused_and_0006_keeps_what_was_there(tmp_path):
    url = "sqlite:///" + str(tmp_path / "booking.sqlite3")
    app = create_app(_settings(url, WEBHOOK_ALLOW_PRIVATE=True))
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="0005")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # webhook 2, with an attempt, under the old schema
        conn.exec_driver_sql(
            "INSERT INTO webhooks (id, url, event_types, secret, enabled, created_at,"
            " delivered_up_to, failed_attempts) VALUES (2, 'http://127.0.0.1:9/a', '[\"*\"]',"
            " 'whsec_x', 1, '2026-11-30 10:00:00.000', 0, 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO webhook_deliveries (webhook_id, entry_id, attempt, duration_ms)"
            " VALUES (2, 1, 1, 5)"
        )
    with app.app_context():
        upgrade(directory=MIGRATIONS)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id, url FROM webhooks").all() == [
            (2, "http://127.0.0.1:9/a")
        ]
        assert conn.exec_driver_sql("SELECT webhook_id FROM webhook_deliveries").all() == [(2,)]
        assert (
            "webhooks"
            in conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'webhook_deliveries'"
            )
            .scalar_one()
            .split("REFERENCES", 1)[1]
        )
    engine.dispose()

    client = app.test_client()
    assert client.delete("/api/webhooks/2", headers=ADMIN).status_code == 204
    created = client.post("/api/webhooks", json={"url": "http://127.0.0.1:9/b"}, headers=ADMIN)
    assert created.json["webhookId"] == 3  # not 2 again, nor 1
    assert client.get("/api/webhooks/2", headers=ADMIN).status_code == 404
    # The copied foreign key still cascades: the deleted webhook's attempt went with it.
    with app.extensions["booking"].engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM webhook_deliveries").scalar_one() == 0
    app.extensions["booking"].engine.dispose()
