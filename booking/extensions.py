"""Extension objects, created unbound here and bound to an app in create_app.

The rate limiter is made per app in ratelimit.py: it keeps per-app state.
"""

import flask_smorest
from flask_httpauth import HTTPBasicAuth
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

# Named constraints, so that Alembic migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()


class Api(flask_smorest.Api):
    # Every operation documents its own problem+json answers (api.problems); a generic
    # "default" response would only add flask-smorest's unused Error schema.
    DEFAULT_ERROR_RESPONSE_NAME = None


api = Api()
admin_auth = HTTPBasicAuth(realm="booking admin")
