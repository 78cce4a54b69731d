"""The served OpenAPI spec, as client tools (Postman, code generators) import it."""

import json


def test_the_spec_holds_only_what_the_api_uses(client):
    spec = client.get("/api/openapi.json").json
    schemas = spec["components"]["schemas"]
    assert "Error" not in schemas and "PaginationMetadata" not in schemas
    text = json.dumps(spec)
    for name in schemas:  # every schema is used somewhere
        assert f'"#/components/schemas/{name}"' in text, name
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        section, name = ref.removeprefix("#/components/").split("/")
        assert name in spec["components"][section], ref


def test_health_checks_have_their_own_tag(client):
    spec = client.get("/api/openapi.json").json
    assert spec["paths"]["/healthz"]["get"]["tags"] == ["health"]
    assert spec["paths"]["/readyz"]["get"]["tags"] == ["health"]
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method != "parameters":  # the path's own parameters
                assert operation.get("tags"), (method, path)


def test_path_parameters_are_camel_case_like_the_bodies(client):
    spec = client.get("/api/openapi.json").json
    names = {
        parameter["name"]
        for operations in spec["paths"].values()
        for operation in operations.values()
        if isinstance(operation, dict)
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    } | {
        parameter["name"]
        for operations in spec["paths"].values()
        for parameter in operations.get("parameters", [])
        if parameter["in"] == "path"
    }
    assert names == {"eventId", "userId", "webhookId"}, names
    assert "/api/events/{eventId}/users/{userId}" in spec["paths"]
