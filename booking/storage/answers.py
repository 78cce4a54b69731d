"""The SQL of Idempotency-Keys: a keyed request's stored answer, read and written by its batch."""

from sqlalchemy import Connection, Row, bindparam, insert, select

from .tables import idempotency_keys

_ANSWERS = select(
    idempotency_keys.c.id,
    idempotency_keys.c.idem_key,
    idempotency_keys.c.scope,
    idempotency_keys.c.fingerprint,
    idempotency_keys.c.status,
    idempotency_keys.c.headers,
    idempotency_keys.c.body,
    idempotency_keys.c.expires_at,
).where(idempotency_keys.c.idem_key.in_(bindparam("keys", expanding=True)))
_INSERT_ANSWERS = insert(idempotency_keys)
_DELETE_ANSWERS = idempotency_keys.delete().where(
    idempotency_keys.c.id.in_(bindparam("ids", expanding=True))
)
# Expired keys, oldest first, from the expires_at index.
_EXPIRED_ANSWERS = (
    select(idempotency_keys.c.id)
    .where(idempotency_keys.c.expires_at < bindparam("now"))
    .order_by(idempotency_keys.c.expires_at)
    .limit(bindparam("limit"))
)


def stored_answers(conn: Connection, keys: list[str]) -> list[Row]:
    """The stored answers of these Idempotency-Keys, in every scope."""
    return list(conn.execute(_ANSWERS, {"keys": keys}))


def write_answers(conn: Connection, new: list[dict], replaced_ids: list[int]) -> None:
    if replaced_ids:
        conn.execute(_DELETE_ANSWERS, {"ids": replaced_ids})
    if new:
        conn.execute(_INSERT_ANSWERS, new)


def purge_expired_answers(conn: Connection, now, limit: int) -> int:
    """Delete up to `limit` expired keys; how many went."""
    ids = list(conn.execute(_EXPIRED_ANSWERS, {"now": now, "limit": limit}).scalars())
    if ids:
        conn.execute(_DELETE_ANSWERS, {"ids": ids})
    return len(ids)
