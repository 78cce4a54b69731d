"""The webhooks' SQL: subscriptions, their delivery state and leases, and the attempts.

Times are the database's clock (journal.database_now), never a process's, so
leases and retry times mean the same on every host.
"""

from datetime import datetime

from sqlalchemy import Connection, Row, and_, bindparam, case, func, or_, select, update

from .tables import deliveries, journal, webhooks

_ID = bindparam("webhook_id")
WEBHOOK_COLUMNS = (
    webhooks.c.id,
    webhooks.c.url,
    webhooks.c.event_types,
    webhooks.c.event_id,
    webhooks.c.enabled,
    webhooks.c.disabled_reason,
    webhooks.c.created_at,
    webhooks.c.delivered_up_to,
    webhooks.c.failed_attempts,
    webhooks.c.failing_since,
    webhooks.c.next_attempt_at,
)
_GET = select(*WEBHOOK_COLUMNS).where(webhooks.c.id == _ID)
_GET_FOR_DELIVERY = select(*WEBHOOK_COLUMNS, webhooks.c.secret).where(webhooks.c.id == _ID)
_PAGE = (
    select(*WEBHOOK_COLUMNS)
    .where(webhooks.c.id > bindparam("after"))
    .order_by(webhooks.c.id)
    .limit(bindparam("limit"))
)
_DELETE = webhooks.delete().where(webhooks.c.id == _ID)
_DELIVERIES = (
    select(
        deliveries.c.id,
        deliveries.c.entry_id,
        deliveries.c.attempt,
        deliveries.c.at,
        deliveries.c.status_code,
        deliveries.c.error,
        deliveries.c.duration_ms,
    )
    .where(deliveries.c.webhook_id == _ID, deliveries.c.id > bindparam("after"))
    .order_by(deliveries.c.id)
    .limit(bindparam("limit"))
)
_NOW = bindparam("now")
# Webhooks with something to send now whose lease is free.
_DUE = (
    select(webhooks.c.id)
    .where(
        webhooks.c.enabled.is_(True),
        webhooks.c.delivered_up_to < bindparam("horizon"),
        or_(webhooks.c.next_attempt_at.is_(None), webhooks.c.next_attempt_at <= _NOW),
        or_(webhooks.c.lease_until.is_(None), webhooks.c.lease_until < _NOW),
    )
    .order_by(webhooks.c.id)
)
_OWNER = bindparam("owner")
_TAKE_LEASE = (
    update(webhooks)
    .where(
        webhooks.c.id == _ID,
        webhooks.c.enabled.is_(True),
        or_(
            webhooks.c.lease_until.is_(None),
            webhooks.c.lease_until < _NOW,
            webhooks.c.lease_owner == _OWNER,
        ),
    )
    .values(lease_owner=_OWNER, lease_until=bindparam("until"))
)
_INSERT_DELIVERY = deliveries.insert()
_OLDEST_ENABLED_CURSOR = select(func.min(webhooks.c.delivered_up_to)).where(
    webhooks.c.enabled.is_(True)
)


def create(conn: Connection, **values) -> int:
    return conn.execute(webhooks.insert(), values).inserted_primary_key[0]


def get(conn: Connection, webhook_id: int, with_secret: bool = False) -> Row | None:
    query = _GET_FOR_DELIVERY if with_secret else _GET
    return conn.execute(query, {"webhook_id": webhook_id}).one_or_none()


def page(conn: Connection, after: int, limit: int) -> list[Row]:
    return list(conn.execute(_PAGE, {"after": after, "limit": limit}))


def delete(conn: Connection, webhook_id: int) -> bool:
    return conn.execute(_DELETE, {"webhook_id": webhook_id}).rowcount == 1


def attempts(conn: Connection, webhook_id: int, after: int, limit: int) -> list[Row]:
    params = {"webhook_id": webhook_id, "after": after, "limit": limit}
    return list(conn.execute(_DELIVERIES, params))


def due(conn: Connection, now: datetime, horizon: int) -> list[int]:
    """Enabled webhooks behind `horizon` (the last entry id) whose turn and lease allow."""
    return list(conn.execute(_DUE, {"now": now, "horizon": horizon}).scalars())


def take_lease(conn: Connection, webhook_id: int, owner: str, now, until) -> bool:
    """Hold (or renew) the webhook's lease until `until`; False if another worker holds it."""
    params = {"webhook_id": webhook_id, "owner": owner, "now": now, "until": until}
    return conn.execute(_TAKE_LEASE, params).rowcount == 1


def update_held(conn: Connection, webhook_id: int, owner: str, **values) -> bool:
    """Change the webhook's delivery state, only while `owner` holds its lease."""
    statement = (
        update(webhooks)
        .where(webhooks.c.id == webhook_id, webhooks.c.lease_owner == owner)
        .values(**values)
    )
    return conn.execute(statement).rowcount == 1


def record_attempt(conn: Connection, **values) -> None:
    conn.execute(_INSERT_DELIVERY, values)


def record_attempts(conn: Connection, attempts: list[dict]) -> None:
    """Several attempts (the same keys each) in one multi-row INSERT."""
    conn.execute(_INSERT_DELIVERY, attempts)


def wanted_entries(
    conn: Connection, after: int, event_id: int | None, types: list[str] | None, limit: int
) -> list[Row]:
    """The next journal rows a webhook wants after its cursor, in entry order."""
    conditions = [journal.c.entry_id > after]
    if event_id is not None:
        conditions.append(journal.c.event_id == event_id)
    if types is not None:
        conditions.append(journal.c.type.in_(types))
    query = (
        select(
            journal.c.entry_id,
            journal.c.type,
            journal.c.event_id,
            journal.c.user_id,
            journal.c.at,
            journal.c.data,
        )
        .where(and_(*conditions))
        .order_by(journal.c.entry_id)
        .limit(limit)
    )
    return list(conn.execute(query))


def oldest_enabled_cursor(conn: Connection) -> int | None:
    """How far the slowest enabled webhook got: the journal is kept beyond it."""
    return conn.execute(_OLDEST_ENABLED_CURSOR).scalar_one()


_DELIVERY_RESULTS = select(
    case((deliveries.c.status_code.between(200, 299), "delivered"), else_="failed"),
    func.count(),
).group_by(case((deliveries.c.status_code.between(200, 299), "delivered"), else_="failed"))


def delivery_results(conn: Connection) -> dict[str, int]:
    return {result: count for result, count in conn.execute(_DELIVERY_RESULTS)}


def oldest_undelivered_at(conn: Connection) -> datetime | None:
    """When the oldest entry the slowest enabled webhook still waits for was written."""
    cursor = oldest_enabled_cursor(conn)
    if cursor is None:
        return None
    return conn.execute(
        select(func.min(journal.c.at)).where(journal.c.entry_id > cursor)
    ).scalar_one()
