"""A background scraper: GET /metrics every `interval` seconds, every sample kept with its time.

As Prometheus would scrape the server, but in a thread of the bench: each scrape
is parsed with prometheus_client's own parser and kept as a Scrape (the time the
answer came, time.time(), and {(sample name, labels): value}). A scrape that
fails (timeout, refused) is counted and skipped, never raised: the scenario goes
on, and the gap shows in the plot. promql.py turns the scrapes into the
dashboard's expressions.
"""

import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from .server import is_loopback

Labels = frozenset[tuple[str, str]]


@dataclass(slots=True)
class Scrape:
    at: float  # time.time() when the answer's headers came: the values are of then
    samples: dict[tuple[str, Labels], float]
    took: float = 0.0  # seconds from the GET sent to the body read


def parse(text: str, at: float, took: float = 0.0) -> Scrape:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(at, samples, took)


class Scraper:
    """GET `url` every `interval` s in a daemon thread, from start() until stop()."""

    def __init__(self, url: str, interval: float = 0.5, timeout: float = 2.0):
        if not is_loopback(urlsplit(url).hostname):
            raise ValueError(f"the scraper only targets loopback, not {url}")
        self.url, self.interval, self.timeout = url, interval, timeout
        self.scrapes: list[Scrape] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def scrape_once(self) -> None:
        sent = time.time()
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as response:
                # Stamped at the answer, not at the GET (Prometheus's choice): under load
                # the GET can wait for a free connection, and the values are the answer's.
                at = time.time()
                text = response.read().decode()
        except (urllib.error.URLError, OSError):
            self.failed += 1
            return
        self.scrapes.append(parse(text, at, time.time() - sent))

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            self.scrape_once()
            # On a fixed grid; after a slow scrape the next goes at once, without a burst
            # to catch up.
            due = max(due + self.interval, time.monotonic())
            self._stop.wait(max(0.0, due - time.monotonic()))

    def start(self) -> "Scraper":
        self._thread.start()
        return self

    def stop(self) -> list[Scrape]:
        """Stop after one last scrape, so the scenario's end is in the series."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout + 1)
        self.scrape_once()
        return self.scrapes
