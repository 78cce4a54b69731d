"""Extension objects, created unbound here and bound to an app in create_app.

The rate limiter is made per app in http/ratelimit.py: it keeps per-app state; the
admin login lives with the routes it guards, in http/auth.py.
"""

import flask_smorest
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from .storage.tables import metadata

# Flask-SQLAlchemy makes the engine from the app's settings; Flask-Migrate's
# commands and migrations/env.py find the tables through it.
db = SQLAlchemy(metadata=metadata)
migrate = Migrate()


class Api(flask_smorest.Api):
    # Every operation documents its own problem+json answers (http.routing.problems); a
    # generic "default" response would only add flask-smorest's unused Error schema.
    DEFAULT_ERROR_RESPONSE_NAME = None


api = Api()
