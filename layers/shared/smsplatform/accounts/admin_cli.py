"""Operator command: make an account an admin, without going through the API.

Against a database the settings reach (DATABASE_URL, or the secret and host of a
deployed stack from inside its VPC):

    python -m smsplatform.accounts.admin_cli --username ops --email ops@example.com

Against a deployed stack from anywhere with AWS credentials, through its
OperatorFunction (which runs inside the VPC):

    python -m smsplatform.accounts.admin_cli --username ops --email ops@example.com --function <OperatorFunctionName>

Creates the account if it does not exist (password from SMS_ADMIN_PASSWORD, or
asked for), or promotes and reactivates an existing one.
"""

import argparse
import getpass
import json
import os
import sys
from typing import Any

from smsplatform.accounts import accounts
from smsplatform.core import db
from smsplatform.core.errors import DomainError

PROMOTE_ADMIN = "promote_admin"


def run_operator_action(event: dict[str, Any]) -> dict[str, Any]:
    """The OperatorFunction's work; answers {"ok": bool, ...} rather than raising, for the CLI to print."""
    if event.get("action") != PROMOTE_ADMIN:
        return {"ok": False, "error": f"unknown action {event.get('action')!r}; known: {PROMOTE_ADMIN}"}
    try:
        with db.transaction() as conn:
            outcome = accounts.promote_or_create_admin(
                conn, username=str(event["username"]), email=str(event["email"]), password=event.get("password")
            )
    except (DomainError, KeyError) as error:
        detail = error.detail if isinstance(error, DomainError) else f"missing {error}"
        return {"ok": False, "error": detail}
    return {"ok": True, "outcome": outcome}


def _invoke(function_name: str, event: dict[str, Any]) -> dict[str, Any]:
    import boto3

    response = boto3.client("lambda").invoke(
        FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
    )
    payload: dict[str, Any] = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        return {"ok": False, "error": payload.get("errorMessage", "the function failed")}
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m smsplatform.accounts.admin_cli", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--username", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--function", help="a deployed stack's OperatorFunction name or ARN (runs there)")
    args = parser.parse_args(argv)
    password = os.environ.get("SMS_ADMIN_PASSWORD")
    if not password and sys.stdin.isatty():
        password = getpass.getpass("Password for a new admin account (ignored if it exists): ")
    event = {"action": PROMOTE_ADMIN, "username": args.username, "email": args.email, "password": password}
    try:
        result = _invoke(args.function, event) if args.function else run_operator_action(event)
    finally:
        db.close_pool()
    if not result.get("ok"):
        print(f"error: {result.get('error')}", file=sys.stderr)
        return 2
    print(f"admin {args.username}: {result['outcome']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
