"""A batch's Idempotency-Keys: the answers stored before, read once; the new ones, written
once with the batch's changes (idempotency.py decides what to do with them)."""

import json
from datetime import datetime

from sqlalchemy import Connection

from ..storage import answers as answer_store
from .idempotency import Answer, Key, Stored


class BatchAnswers:
    def __init__(self, conn: Connection):
        self.conn = conn
        self.now = datetime.utcnow()
        self._answers: dict[tuple[str, str], Stored] = {}
        self._expired: dict[tuple[str, str], int] = {}  # key -> row id to replace
        self._new: dict[tuple[str, str], dict] = {}

    def load(self, keys: list[Key]) -> None:
        """Read the stored answers of the batch's Idempotency-Keys (one statement)."""
        if not keys:
            return
        for row in answer_store.stored_answers(self.conn, sorted({key.key for key in keys})):
            identity = (row.idem_key, row.scope)
            if row.expires_at <= self.now:
                self._expired[identity] = row.id  # the key is new again
                continue
            headers = json.loads(row.headers)
            content_type = headers.pop("Content-Type")
            answer = Answer(row.status, headers, row.body, content_type)
            self._answers[identity] = Stored(row.fingerprint, answer, row.expires_at)

    def stored(self, key: Key) -> Stored | None:
        return self._answers.get(key.identity)

    def store(self, key: Key, answer: Answer) -> None:
        expires_at = self.now + key.ttl
        self._answers[key.identity] = Stored(key.fingerprint, answer, expires_at)
        headers = {**answer.headers, "Content-Type": answer.content_type}
        self._new[key.identity] = {
            "idem_key": key.key,
            "scope": key.scope,
            "fingerprint": key.fingerprint,
            "status": answer.status,
            "headers": json.dumps(headers, sort_keys=True),
            "body": answer.body,
            "expires_at": expires_at,
        }

    def write(self) -> None:
        if not self._new:
            return
        replaced = [self._expired[i] for i in self._new if i in self._expired]
        answer_store.write_answers(self.conn, list(self._new.values()), replaced)
        # Keep the table from growing: a keyed batch also removes some expired keys.
        answer_store.purge_expired_answers(self.conn, self.now, limit=100)
