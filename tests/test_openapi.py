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


def inline(node, schemas: dict):
    """A schema with its $refs replaced by what they name, as JSON Schema: OpenAPI 3.0's
    `nullable: true` becomes a null type."""
    if isinstance(node, dict):
        if "$ref" in node:
            return inline(schemas[node["$ref"].rsplit("/", 1)[1]], schemas)
        found = {key: inline(value, schemas) for key, value in node.items() if key != "nullable"}
        if node.get("nullable") and "type" in node:
            found["type"] = [node["type"], "null"]
        return found
    if isinstance(node, list):
        return [inline(value, schemas) for value in node]
    return node


def test_every_parameter_body_and_answer_has_an_example_that_fits_its_schema(client):
    """What client tools generate requests and sample answers from (docs/postman.md)."""
    import jsonschema_rs

    spec = client.get("/api/openapi.json").json
    schemas = spec["components"]["schemas"]
    checked = 0
    for path, operations in spec["paths"].items():
        for parameter in operations.get("parameters", []):
            assert "example" in parameter, (path, parameter["name"])
        for method, operation in operations.items():
            if method == "parameters":
                continue
            where = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                schema = inline(parameter["schema"], schemas)
                example = parameter.get("example", schema.get("example"))
                assert example is not None, (where, parameter["name"])
                jsonschema_rs.validate(schema, example)
            contents = [operation["requestBody"]["content"]] if "requestBody" in operation else []
            contents += [
                answer["content"]
                for answer in operation["responses"].values()
                if "content" in answer
            ]
            for content in contents:
                for media in content.values():
                    assert "example" in media, where
                    jsonschema_rs.validate(inline(media["schema"], schemas), media["example"])
                    checked += 1
    assert checked > 100
