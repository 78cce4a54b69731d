"""Strict JSON bodies (no repeated keys, NaN or Infinity, no cut-off body; any failure is a
400), and the Blueprint whose @arguments parse them so."""

import json

from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import missing
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import BadRequest


def _no_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        # Which value would win differs between parsers; refuse to guess.
        raise ValueError("an object repeats a key")
    return dict(pairs)


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def strict_json(body: bytes):
    """Parse a body as strict JSON: no repeated keys, NaN or Infinity; any failure is a 400."""
    try:
        return json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_constant,
        )
    except json.JSONDecodeError as error:
        if not error.doc:
            raise  # an empty body: webargs reports the missing fields
        raise BadRequest(f"The body is not valid JSON: {error.msg}.") from None
    except (ValueError, RecursionError) as error:
        # UnicodeDecodeError, repeated keys, NaN, integers of over 4300 digits, deep nesting
        if isinstance(error, RecursionError):
            reason = "nested too deeply"
        elif "digits" in str(error):
            reason = "a number has too many digits"
        else:
            reason = str(error)
        raise BadRequest(f"The body is not valid JSON: {reason}.") from None


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400  # webargs says 422; our contract says 400

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return missing
        body = req.get_data(cache=True)
        if req.content_length is not None and len(body) != req.content_length:
            # gunicorn hands over what came before the client hung up; a cut body
            # may still parse (a complete object) but was not what was sent.
            raise BadRequest("The body is shorter than its Content-Length.")
        return strict_json(body)


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = Parser()
