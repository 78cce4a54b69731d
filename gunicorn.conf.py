"""gunicorn settings from the environment: PORT, WEB_CONCURRENCY, GUNICORN_THREADS."""

import os

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '3000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# Load the app in each worker, after the fork: database pools must not be shared
# between processes.
preload_app = False
# gunicorn 24+ opens a control socket at a fixed path in $HOME; several instances
# on one host (or a read-only home) would collide, and nothing here uses it.
control_socket_disable = True
