# Copy to instance/config.py to override settings without environment variables.
# Every key here can also be set as an environment variable of the same name;
# instance/config.py wins over the environment.

# A MySQL/MariaDB database (PyMySQL driver); any SQLAlchemy URL works.
# SQLALCHEMY_DATABASE_URI = "mysql+pymysql://booking:secret@127.0.0.1:3306/booking?charset=utf8mb4"

# Admin (HTTP Basic) for creating and changing events, the waiting list, history and webhooks.
# Prefer a hash:
#   python -c "from werkzeug.security import generate_password_hash as h; print(h('...'))"
# ADMIN_USERNAME = "admin"
# ADMIN_PASSWORD_HASH = "scrypt:32768:8:1$..."

# Seconds a change waits for the booking lock before answering 503 (also the
# MySQL lock_wait_timeout and innodb_lock_wait_timeout of each connection).
# LOCK_TIMEOUT = 5

# Flask-Limiter: any limit string, or "off".
# RATE_LIMIT = "100 per 15 minutes"
# RATELIMIT_STORAGE_URI = "redis://127.0.0.1:6379"

# Largest request body in bytes (413 above it).
# MAX_CONTENT_LENGTH = 16384

# The journal and webhooks (seconds). The worker (`flask --app wsgi worker`)
# delivers webhooks and purges journal entries older than JOURNAL_RETENTION once
# every enabled webhook has them.
# JOURNAL_RETENTION = 2592000          # 30 days
# WEBHOOK_RETRY_BASE = 5               # first retry after ~5 s, doubling, with jitter
# WEBHOOK_RETRY_CAP = 3600             # never more than an hour between attempts
# WEBHOOK_MAX_AGE = 259200             # failing for 3 days disables the webhook
# WEBHOOK_LEASE = 30                   # a dead worker's webhooks pass on after this
# WEBHOOK_ALLOW_PRIVATE = False        # True lets webhooks reach loopback/private nets
# WORKER_POLL_INTERVAL = 0.25          # how often an idle worker looks for new entries
