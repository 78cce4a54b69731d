"""Sending changes so that they commit in one group-commit batch, in a known order.

`send_as_batch(app, calls)` holds the app's process lock, starts one thread
per call and lets each go only once the one before has queued its change, then
lets go of the lock. The first change runs alone (its thread leads and waits
for the lock) and every later one queues behind it in the order given, so they
run as one batch in that order. Used by the state machine and the
examples in test_group_commit.py.
"""

import threading
import time

from flask import Flask


def send_as_batch(app: Flask, calls: list[tuple], timeout: float = 10) -> list:
    """calls: (path, event_id, user_id[, tickets]) with path "book", "cancel" or "claim"
    (tickets None or left out: none sent); the responses, in order."""
    service = app.extensions["booking"]
    responses: list = [None] * len(calls)

    def send(index: int, path: str, event_id: int, user_id: int, tickets=None) -> None:
        body = {"userId": user_id, "eventId": event_id}
        if tickets is not None:
            body["tickets"] = tickets
        responses[index] = app.test_client().post(f"/api/events/{path}", json=body)

    batches_before = service.changes.batches
    threads = []
    with service.lock.held():
        for index, call in enumerate(calls):
            queued = service.changes.submitted
            thread = threading.Thread(target=send, args=(index, *call))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + timeout
            while service.changes.submitted == queued:
                assert time.monotonic() < deadline, "a change was never queued"
                time.sleep(0.0005)
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a request never got its answer"
    # The first change alone (or with the next, if it queued before the leader
    # took its batch), then all the others together: at most two batches.
    assert 1 <= service.changes.batches - batches_before <= min(len(calls), 2)
    return responses
