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
