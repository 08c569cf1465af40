import json

from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from smsplatform.api.problems import from_validation_error, problem
from smsplatform.core.errors import FieldError


def test_a_problem_is_rfc9457_json() -> None:
    response = problem(409, "conflict", "Conflict", "Already there.", errors=[FieldError("email", "is taken")])

    assert response.status_code == 409
    assert response.headers["Content-Type"] == "application/problem+json"
    assert json.loads(str(response.body)) == {
        "type": "https://docs.sms-platform.dev/problems/conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "Already there.",
        "errors": [{"field": "email", "message": "is taken"}],
    }


def test_validation_errors_name_fields_and_never_echo_the_input() -> None:
    error = RequestValidationError(
        [
            {"loc": ("body", "password"), "msg": "String should have at most 256 characters", "input": "hunter2" * 50},
            {"loc": ("body", "address", "city"), "msg": "Field required", "type": "missing"},
        ]
    )

    body = json.loads(str(from_validation_error(error).body))

    assert body["status"] == 422
    assert body["errors"] == [
        {"field": "password", "message": "String should have at most 256 characters"},
        {"field": "address.city", "message": "Field required"},
    ]
    assert "hunter2" not in json.dumps(body)


def test_invalid_json_is_a_malformed_request() -> None:
    error = RequestValidationError([{"type": "json_invalid", "loc": ("body", 3), "msg": "JSON decode error"}])

    assert from_validation_error(error).status_code == 400
