"""Running an import when its file lands: claim the job, stream the file from S3, load it, end it.

At the scale bulk senders work at: a large file is normalised by several worker
processes while this one feeds COPY.
"""

import os

from smsplatform.contacts.imports.csv_files import ImportFileError
from smsplatform.contacts.imports.jobs import ContactImport, claim, fail, import_id_from_key
from smsplatform.contacts.imports.loading import load
from smsplatform.core import db, storage
from smsplatform.core.observability import logger

MAX_BODY_BYTES = 5 * 1024 * 1024  # Lambda's synchronous payload limit is 6 MB
PARALLEL_FROM_BYTES = 8 * 1024 * 1024
MAX_WORKERS = 4


def workers_for(size_bytes: int) -> int:
    """Worker processes for a file: none for small files (spawning costs ~0.3 s each)."""
    if size_bytes < PARALLEL_FROM_BYTES:
        return 1
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def process_uploaded_file(bucket: str, key: str) -> ContactImport | None:
    """Runs the import a file under imports/ belongs to; None when there is nothing (more) to do.

    Failures of the file itself end the import as `failed` with the reason;
    anything else (the database, S3) raises, so the queue delivers the event again.
    """
    import_id = import_id_from_key(key)
    if import_id is None:
        logger.warning("object is not an import file; ignored", extra={"key": key})
        return None
    with db.transaction() as conn:
        job = claim(conn, import_id)
    if job is None:
        logger.info("import already finished; event ignored", extra={"import_id": str(import_id)})
        return None
    try:
        stream, size = storage.open_object(bucket, job.object_key)
    except storage.MissingObjectError:
        with db.transaction() as conn:
            fail(conn, job.id, "The uploaded file could not be found.")
        return None
    with db.connect_direct() as progress:

        def report(rows: int) -> None:
            progress.execute("UPDATE contact_imports SET processed_rows = %s WHERE id = %s", (rows, job.id))

        try:
            with db.transaction() as conn:
                done = load(conn, job, stream, report, workers=workers_for(size))
        except ImportFileError as exc:
            with db.transaction() as conn:
                fail(conn, job.id, str(exc))
            return None
    if done.imported + done.updated >= db.ANALYZE_AFTER_ROWS:
        with db.transaction() as conn:
            db.analyze(conn, "contacts", "contact_group_members")
    logger.info(
        "import completed",
        extra={"import_id": str(done.id), "rows": done.total_rows, "imported": done.imported, "invalid": done.invalid},
    )
    return done
