"""Operator command: make an account an admin, against any database the settings point at.

    DATABASE_URL=... python -m smsplatform.admin_cli --username ops --email ops@example.com

Creates the account if it does not exist (password from SMS_ADMIN_PASSWORD, or
asked for), or promotes and reactivates an existing one. It does not go through
the API, so it works before any admin exists and against the deployed database.
"""

import argparse
import getpass
import os
import sys

from smsplatform import accounts, db
from smsplatform.errors import DomainError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsplatform.admin_cli", description=__doc__.split("\n")[0])
    parser.add_argument("--username", required=True)
    parser.add_argument("--email", required=True)
    args = parser.parse_args(argv)
    password = os.environ.get("SMS_ADMIN_PASSWORD")
    if not password and sys.stdin.isatty():
        password = getpass.getpass("Password for a new admin account (ignored if it exists): ")
    try:
        with db.transaction() as conn:
            outcome = accounts.promote_or_create_admin(
                conn, username=args.username, email=args.email, password=password
            )
    except DomainError as error:
        print(f"error: {error.detail}", file=sys.stderr)
        return 2
    finally:
        db.close_pool()
    print(f"admin {args.username}: {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
