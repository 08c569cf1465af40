"""Loading an import, set-wise: the file streamed once into a staging table by COPY, then SQL does the rest.

Bad rows are reported, duplicates within the file collapse to their last line,
contacts are upserted (unchanged rows are not rewritten, so importing a file
again changes nothing), and group membership is added in one statement.
"""

import time
from collections.abc import Callable
from typing import BinaryIO

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.contacts.imports.csv_files import open_csv
from smsplatform.contacts.imports.jobs import COLUMNS, ContactImport
from smsplatform.contacts.imports.normalisation import staged_rows
from smsplatform.core.observability import logger

MAX_STORED_ERRORS = 10_000
PROGRESS_EVERY_ROWS = 25_000


def load(
    conn: Connection[DictRow],
    job: ContactImport,
    stream: BinaryIO,
    report_progress: Callable[[int], None] = lambda rows: None,
    workers: int = 1,
) -> ContactImport:
    """Streams the file into staging and applies it; runs inside the caller's transaction."""
    started = time.perf_counter()
    conn.execute("SET LOCAL work_mem = '256MB'")
    conn.execute(
        """CREATE TEMP TABLE import_staging (
               line_number integer, phone text, country_code text, number_time_zones text, first_name text,
               last_name text, email text, timezone text, custom_fields jsonb, error text) ON COMMIT DROP"""
    )
    layout, rows = open_csv(stream)
    total = 0
    with conn.cursor().copy("COPY import_staging FROM STDIN") as copy:
        for staged in staged_rows(layout, rows, job.default_region, workers):
            copy.write_row(staged)
            total += 1
            if total % PROGRESS_EVERY_ROWS == 0:
                report_progress(total)
    report_progress(total)
    staged_at = time.perf_counter()

    conn.execute(
        """INSERT INTO contact_import_errors (import_id, line_number, reason)
           SELECT %s, line_number, error FROM import_staging WHERE error IS NOT NULL
            ORDER BY line_number LIMIT %s""",
        (job.id, MAX_STORED_ERRORS),
    )
    counts = conn.execute(
        """SELECT count(*) FILTER (WHERE error IS NOT NULL) AS invalid,
                  count(*) FILTER (WHERE error IS NULL) - count(DISTINCT phone) FILTER (WHERE error IS NULL)
                      AS duplicates
             FROM import_staging"""
    ).fetchone()
    assert counts is not None
    upserted = conn.execute(
        """WITH latest AS (
               SELECT DISTINCT ON (phone) phone, country_code, number_time_zones, first_name, last_name, email,
                      timezone, custom_fields
                 FROM import_staging WHERE error IS NULL
                ORDER BY phone, line_number DESC
           ), written AS (
               INSERT INTO contacts AS c (user_id, phone_number, country_code, number_time_zones, first_name,
                                          last_name, email, timezone, custom_fields, status)
               SELECT %(user)s, l.phone, l.country_code, l.number_time_zones, l.first_name, l.last_name, l.email,
                      l.timezone, l.custom_fields,
                      CASE WHEN o.phone_number IS NULL THEN 'active' ELSE 'unsubscribed' END
                 FROM latest l
                 LEFT JOIN opt_outs o ON o.user_id = %(user)s AND o.phone_number = l.phone
               ON CONFLICT (user_id, phone_number) DO UPDATE SET
                   country_code = coalesce(EXCLUDED.country_code, c.country_code),
                   number_time_zones = EXCLUDED.number_time_zones,
                   first_name = coalesce(EXCLUDED.first_name, c.first_name),
                   last_name = coalesce(EXCLUDED.last_name, c.last_name),
                   email = coalesce(EXCLUDED.email, c.email),
                   timezone = coalesce(EXCLUDED.timezone, c.timezone),
                   custom_fields = c.custom_fields || EXCLUDED.custom_fields,
                   updated_at = now()
               WHERE (c.country_code, c.first_name, c.last_name, c.email, c.timezone, c.custom_fields)
                     IS DISTINCT FROM (coalesce(EXCLUDED.country_code, c.country_code),
                                       coalesce(EXCLUDED.first_name, c.first_name),
                                       coalesce(EXCLUDED.last_name, c.last_name),
                                       coalesce(EXCLUDED.email, c.email),
                                       coalesce(EXCLUDED.timezone, c.timezone),
                                       c.custom_fields || EXCLUDED.custom_fields)
               RETURNING (xmax = 0) AS inserted
           )
           SELECT count(*) FILTER (WHERE inserted) AS imported, count(*) FILTER (WHERE NOT inserted) AS updated
             FROM written""",
        {"user": job.user_id},
    ).fetchone()
    assert upserted is not None
    if job.group_id is not None:
        conn.execute(
            """INSERT INTO contact_group_members (group_id, contact_id)
               SELECT %(group)s, c.id
                 FROM (SELECT DISTINCT phone FROM import_staging WHERE error IS NULL) s
                 JOIN contacts c ON c.user_id = %(user)s AND c.phone_number = s.phone
               ON CONFLICT DO NOTHING""",
            {"group": job.group_id, "user": job.user_id},
        )
    valid_unique = total - counts["invalid"] - counts["duplicates"]
    row = conn.execute(
        f"""UPDATE contact_imports
               SET status = 'completed', finished_at = now(), total_rows = %(total)s, processed_rows = %(total)s,
                   imported = %(imported)s, updated = %(updated)s, unchanged = %(unchanged)s,
                   duplicates = %(duplicates)s, invalid = %(invalid)s, ignored_columns = %(ignored)s,
                   error_message = NULL
             WHERE id = %(id)s RETURNING {COLUMNS}""",
        {
            "id": job.id,
            "total": total,
            "imported": upserted["imported"],
            "updated": upserted["updated"],
            "unchanged": valid_unique - upserted["imported"] - upserted["updated"],
            "duplicates": counts["duplicates"],
            "invalid": counts["invalid"],
            "ignored": layout.ignored,
        },
    ).fetchone()
    assert row is not None
    logger.info(
        "import applied",
        extra={
            "import_id": str(job.id),
            "rows": total,
            "workers": workers,
            "staging_seconds": round(staged_at - started, 2),
            "apply_seconds": round(time.perf_counter() - staged_at, 2),
        },
    )
    return ContactImport.from_row(row)
