# Copy to instance/config.py to override settings without environment variables.
# Every key here can also be set as an environment variable of the same name;
# instance/config.py wins over the environment.

# A MySQL/MariaDB database (PyMySQL driver); any SQLAlchemy URL works.
# SQLALCHEMY_DATABASE_URI = "mysql+pymysql://booking:secret@127.0.0.1:3306/booking?charset=utf8mb4"

# Admin (HTTP Basic) for POST /api/events/initialize and the waiting-list view.
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
