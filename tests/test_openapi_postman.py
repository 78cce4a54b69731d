"""The served spec, imported as a client developer imports it, runs as it stands.

openapi-to-postmanv2 (what Postman's importer uses) turns /api/openapi.json into a
collection with parameters taken from the spec's examples; Newman runs it top to bottom
against real gunicorn on a fresh MariaDB database. Every request must answer 2xx, and
each answer must be the example the spec shows for it (booking/http/examples.py), give or
take timestamps and the webhook secret.
"""

import json
import re
import subprocess

import httpx
import pytest

from . import newman
from .conftest import ADMIN_PASSWORD, require_service
from .servers import Gunicorn

ENVIRONMENT = newman.ROOT / "docs" / "postman" / "local.postman_environment.json"
CONVERTER = newman.NODE_DIR / "node_modules" / ".bin" / "openapi2postmanv2"
# Values that differ on every run: when something happened, and the secret.
VOLATILE = {"at", "createdAt", "expiresAt", "offerExpiresAt", "holdExpiresAt", "secret"}
METHODS = {"get", "post", "put", "patch", "delete"}


def steady(value):
    if isinstance(value, dict):
        return {k: "<varies>" if k in VOLATILE else steady(v) for k, v in value.items()}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


def operation_of(spec: dict, method: str, path: str) -> dict:
    """The spec's operation a request went to: its path template matched segment by segment."""
    for template, operations in spec["paths"].items():
        pattern = re.sub(r"\\\{\w+\\\}", r"[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method in operations:
            return operations[method]
    raise AssertionError(f"no operation for {method.upper()} {path}")


@pytest.mark.mariadb
def test_the_converted_spec_runs_against_a_fresh_database(fresh_mysql_url, tmp_path):
    try:
        newman.command()
        if not CONVERTER.exists():
            raise newman.NewmanMissing(f"{CONVERTER} is missing: run `make node`")
    except newman.NewmanMissing as missing:
        require_service("openapi-to-postmanv2 and Newman", missing)
    with Gunicorn(fresh_mysql_url, ADMIN_PASSWORD, workers=2) as server:
        spec = httpx.get(f"{server.url}/api/openapi.json").json()
        (tmp_path / "openapi.json").write_text(json.dumps(spec))
        # As Postman's importer with "Parameter generation: Example" (docs/postman.md).
        subprocess.run(
            [
                CONVERTER,
                *("--spec", tmp_path / "openapi.json"),
                *("--output", tmp_path / "collection.json"),
                *("--options", "parametersResolution=Example,folderStrategy=Tags"),
            ],
            check=True,
            capture_output=True,
        )
        # The repository's environment serves it too: its basicAuth* name the admin's.
        run = newman.run(
            tmp_path / "collection.json",
            {"baseUrl": server.url, "adminPassword": ADMIN_PASSWORD},
            ENVIRONMENT,
        )
    assert run.returncode == 0, run.failures()
    executions = run.report["run"]["executions"]

    operations = sum(len(METHODS & set(ops)) for ops in spec["paths"].values())
    assert len(executions) == operations  # one request per operation, none skipped
    answered = []
    for execution in executions:
        request, response = execution["request"], execution["response"]
        method, path = request["method"].lower(), "/" + "/".join(request["url"]["path"])
        answered.append(f"{method.upper()} {path} {response['code']}")
        operation = operation_of(spec, method, path)
        documented = str(response["code"])
        assert 200 <= response["code"] < 300, answered
        assert documented in operation["responses"], answered
        content = operation["responses"][documented].get("content")
        if content is None:  # 204: no body, none documented
            assert not response.get("stream", {}).get("data"), path
            continue
        body = json.loads(bytes(response["stream"]["data"]))
        assert steady(body) == steady(content["application/json"]["example"]), path
    assert answered[0] == "POST /api/events/initialize 201"
