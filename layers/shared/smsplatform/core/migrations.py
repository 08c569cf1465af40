"""Forward-only schema migrations from the `sql/` folder.

Files are named `NNNN_description.sql` and applied in order, each in its own
transaction together with its row in `schema_migrations`. A session-level
advisory lock serialises concurrent runners (two deploys, two local stacks), so
running twice or from two processes at once applies each file exactly once.
An applied file whose content has changed is refused: edit forward, never back.
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

# An arbitrary constant naming "the schema migration lock" in pg_advisory_lock's key space.
MIGRATION_LOCK_KEY = 727_001
_FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(sql_dir: Path) -> list[Migration]:
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_description.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


def main() -> None:
    """`python -m smsplatform.core.migrations [SQL_DIR]`: applies pending migrations to the configured database."""
    import sys

    from smsplatform.core.config import get_settings
    from smsplatform.core.db import database_conninfo

    sql_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "sql")
    applied = apply_migrations(database_conninfo(get_settings()), sql_dir)
    print("applied: " + (", ".join(applied) if applied else "nothing pending"))


def apply_migrations(conninfo: str, sql_dir: Path) -> list[str]:
    """Applies what is pending; returns the names of the files it applied."""
    migrations = discover(sql_dir)
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version    integer PRIMARY KEY,
                       name       text NOT NULL,
                       checksum   char(64) NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            applied = {row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM schema_migrations")}
            for migration in migrations:
                if migration.version in applied:
                    if applied[migration.version].strip() != migration.checksum:
                        raise MigrationError(
                            f"{migration.version:04d}_{migration.name}.sql changed after it was applied"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)  # trusted files from sql/
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(f"{migration.version:04d}_{migration.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now


if __name__ == "__main__":
    main()
