"""memory:// rate limits (booking/http/limit_storage.py): the same counting as limits'
own MemoryStorage, without a new thread for every burst of hits."""

import threading
import time

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from booking.http.limit_storage import SweptMemoryStorage


def test_memory_uris_get_the_swept_storage():
    assert type(storage_from_string("memory://")) is SweptMemoryStorage


def test_hits_count_and_expire_as_before_without_starting_threads(monkeypatch):
    storage = storage_from_string("memory://")
    limiter = FixedWindowRateLimiter(storage)
    limit = parse("3 per 1 second")
    started = []
    start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda t: started.append(t) or start(t))
    assert [limiter.hit(limit, "client") for _ in range(4)] == [True, True, True, False]
    for n in range(200):  # limits' MemoryStorage starts a Timer per 10 ms of these
        limiter.hit(limit, f"other-{n}")
        time.sleep(0.001)
    assert started == []
    deadline = time.monotonic() + 5
    while not limiter.hit(limit, "client"):  # the window ends: counting starts again
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_the_sweep_frees_expired_counters():
    storage = storage_from_string("memory://")
    FixedWindowRateLimiter(storage).hit(parse("1 per 1 second"), "client")
    assert storage.storage
    deadline = time.monotonic() + 10
    while storage.storage or storage.expirations:  # swept within a second or two
        assert time.monotonic() < deadline, (dict(storage.storage), storage.expirations)
        time.sleep(0.1)
