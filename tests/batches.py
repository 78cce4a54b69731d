"""Sending changes so that they commit in one group-commit batch, in a known order.

`send_as_batch(app, calls)` holds the app's booking locks, starts one thread per
call and lets each go only once the one before has queued its change, then lets
go of the locks. Per stripe, the first change runs alone (its thread leads and
waits for the lock) and every later one queues behind it in the order given,
so they run as one batch in that order. Used by the state machine and the
examples in test_group_commit.py.
"""

import threading
import time
from collections import Counter
from contextlib import ExitStack

from flask import Flask


def send_as_batch(app: Flask, calls: list[tuple[str, int, int]], timeout: float = 10) -> list:
    """calls: (path, event_id, user_id) with path "book" or "cancel"; the responses, in order."""
    service = app.extensions["booking"]
    responses: list = [None] * len(calls)

    def send(index: int, path: str, event_id: int, user_id: int) -> None:
        responses[index] = app.test_client().post(
            f"/api/events/{path}", json={"userId": user_id, "eventId": event_id}
        )

    per_stripe = Counter(service.lock.stripe(event_id) for _, event_id, _ in calls)
    batches_before = service.changes.batches
    threads = []
    with ExitStack() as held:
        for stripe in sorted(per_stripe):
            held.enter_context(service.lock.held(stripe))
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
    # Per stripe the first change alone, then all the others together.
    expected = sum(min(count, 2) for count in per_stripe.values())
    assert service.changes.batches - batches_before == expected
    return responses
