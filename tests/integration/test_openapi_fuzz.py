"""The API fuzzed from its own OpenAPI document (schemathesis), as a client would reach it over HTTP.

The gateway serves the in-process handlers on a loopback port; schemathesis generates valid and invalid
requests for every operation and checks that none answers 5xx, that every status code and content type is
one the document declares, that responses match their schemas, and that invalid requests are refused.
`make test` runs a bounded, seeded pass; `make fuzz` a long random one (SMS_FUZZ_EXAMPLES, SMS_FUZZ_SECONDS).
"""

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.gateway import GatewayServer
from tests.support.harness import Api

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
NEGATIVE = "negative_data_rejection"
# schemathesis 4.32's coverage phase reports PATCH /v1/groups/{group_id} {"description": ""} as "missing required
# property: name", a property that body's schema does not require (it does so for POST /v1/groups only).
# That one operation is fuzzed without the negative-data check; every other check still runs on it.
FALSE_POSITIVE = "PATCH /v1/groups/{group_id}"


@pytest.fixture
def served(api: Api) -> Iterator[str]:
    server = GatewayServer(api.gateway, "127.0.0.1", 0)
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def _fuzz(base_url: str, token: str, checks: str, *selection: str, seconds: str | None = None) -> tuple[int, str]:
    examples = os.environ.get("SMS_FUZZ_EXAMPLES", "20")
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{base_url}/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        checks,
        "--max-examples",
        examples,
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--no-color",
        *(["--max-time", seconds] if seconds else ["--seed", "20261130"]),
        *selection,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=7200)
    return done.returncode, done.stdout + done.stderr


def _generated(output: str) -> int:
    found = re.search(r"(\d+) generated", output)
    return int(found.group(1)) if found else 0


def test_the_api_holds_to_its_openapi_under_fuzzing(served: str, user: dict[str, Any]) -> None:
    seconds = os.environ.get("SMS_FUZZ_SECONDS")
    everything, output = _fuzz(
        served, user["token"], f"{CHECKS},{NEGATIVE}", "--exclude-name", FALSE_POSITIVE, seconds=seconds
    )
    one, one_output = _fuzz(served, user["token"], CHECKS, "--include-name", FALSE_POSITIVE)

    print(f"schemathesis: {_generated(output)} + {_generated(one_output)} requests generated")
    document = json.loads(urllib.request.urlopen(f"{served}/v1/openapi.json", timeout=10).read())  # noqa: S310
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    operations = sum(1 for item in document["paths"].values() for key in item if key in methods)
    # Every operation schemathesis takes from the document (all but one of them, as since it was first run:
    # 51 of 52) but the fenced one was fuzzed; a new route is fuzzed without editing this test.
    assert f"Selected: {operations - 2}/{operations - 1}" in output, re.findall(r"Selected: \S+", output)
    assert everything == 0, output[-6000:]
    assert one == 0, one_output[-6000:]
    assert _generated(output) > 1000
