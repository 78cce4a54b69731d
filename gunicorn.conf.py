"""gunicorn settings, from the environment.

HOST (127.0.0.1) and PORT (3000), or GUNICORN_BIND; WEB_CONCURRENCY (worker
processes, 2), GUNICORN_THREADS (16), GUNICORN_WORKER_CONNECTIONS (2 x threads),
GUNICORN_TIMEOUT (83 s, from LOCK_TIMEOUT), GUNICORN_GRACEFUL_TIMEOUT (20 s),
GUNICORN_ACCESS_LOG (off; "-" for stdout or a path: JSON lines like the app's own
request log).
"""

import os

# Loopback unless told otherwise: on a laptop the API and /metrics stay off the network;
# a deployment behind nginx on the same host needs nothing more (docs/deployment.md).
_host = os.environ.get("HOST") or "127.0.0.1"
bind = os.environ.get("GUNICORN_BIND") or f"{_host}:{os.environ.get('PORT', '3000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads (gthread workers): requests of one process wait at the booking lock
# together, so the thread holding it commits them all in one transaction (group
# commit). 2 processes x 16 threads measured best for bookings on 2 cores; see
# docs/performance.md.
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
# A gthread worker accepts connections until it holds this many; without a cap
# one worker can take every keep-alive connection and leave the others idle
# (measured: one of two workers served 10,119 of 10,201 /healthz requests).
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", str(2 * threads)))
# A worker silent this long is killed and replaced. It must exceed the worst
# case the app bounds itself, or a silent database gives nginx's 502 instead of
# our 503: the pool's ping and the reconnect's handshake each wait PyMySQL's read
# timeout (6 x LOCK_TIMEOUT + 5 s, booking/storage/database.py), the connect up to 3 s.
_io_timeout = 6 * max(1, int(os.environ.get("LOCK_TIMEOUT", "5"))) + 5
timeout = int(os.environ.get("GUNICORN_TIMEOUT", str(max(60, 2 * _io_timeout + 3 + 10))))
# On SIGTERM (or Ctrl-C), finish in-flight requests for up to this long before exiting.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
# gthread, stopped gracefully by SIGINT too (Ctrl-C signals every process of
# `make run`), and never hung by two quit signals at once: booking/gunicorn_worker.py.
worker_class = "booking.gunicorn_worker.ThreadWorker"
keepalive = 5
# Load the app in each worker after the fork: database pools and locks must not
# be shared between processes.
preload_app = False

# The app logs one JSON line per request itself (with its request id), so
# gunicorn's access log is off unless asked for; both use the same JSON form.
logger_class = "booking.gunicorn_logging.JsonLogger"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# gunicorn 24+ opens a control socket at a fixed path in $HOME; several instances
# on one host (or a read-only home) would collide, and nothing here uses it.
control_socket_disable = True


# Prometheus multiprocess mode (booking/metrics.py): every worker writes its
# metrics to files here, and /metrics sums them. Set, and emptied of the last
# run's files, before anything imports prometheus_client (the logger class below
# imports the app's package); a fresh directory unless the operator names one.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="booking-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
os.makedirs(_metrics_dir, exist_ok=True)
for _name in os.listdir(_metrics_dir):
    if _name.endswith(".db"):
        os.remove(os.path.join(_metrics_dir, _name))


def on_starting(server):
    """Refuse a configuration that cannot work once, in the master, before forking.

    A worker that exits on a bad setting (table mode on a Galera node, an
    unwritable LOG_FILE) would otherwise be replaced by gunicorn again and again.
    """
    # Ctrl-C stops as SIGTERM does: the workers finish the requests in flight.
    # gunicorn's own SIGINT is a quick stop (SIGQUIT to the workers), which drops them
    # and can hang a worker that got the terminal's SIGINT as well. A second Ctrl-C,
    # or SIGQUIT, is still the quick stop. (The master finds handlers by name.)
    server.handle_int = server.handle_term
    from booking import create_app
    from booking.http import auth

    app = create_app()
    auth.warn_if_closed(app)  # once, for the server; not for every CLI command
    app.extensions["booking"].engine.dispose()


def child_exit(server, worker):
    """A dead worker's live gauges stop counting; its counters stay in the sum."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
