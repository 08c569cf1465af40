"""The batches that still have unsent messages (sql/0027): where every search for unsent messages starts.

No index of the delivery logs names a column that the claim, the record or the receipt writes, so each of
them updates its rows in place (ADR 0017). An index of unsent rows cannot be one of them: sending a row
takes it out. `send_batches` holds a row per batch with messages scheduled, queued or sending, kept from
every write of the logs by triggers, and a search for unsent messages picks batches there and reads their
rows along the batch indexes: it costs what is in flight, not what the history holds.
"""


def rows_of(batches: str, columns: str, where: str = "true", tail: str = "") -> str:
    """SQL for `columns` of the rows `l` matching `where` in the batches `b` that `batches` selects from
    send_batches; a campaign's along its batch index, an API send's along its own. `tail` ends each of the
    two (ORDER BY, LIMIT, FOR UPDATE OF l ...)."""
    branches = (
        f"""SELECT * FROM (
                SELECT {columns} FROM ({batches}) b
                  JOIN sms_delivery_logs l ON l.{column} = b.reference_id AND l.batch_number = b.batch_number
                 WHERE b.kind = '{kind}' AND ({where}) {tail}) {kind}_rows"""
        for kind, column in (("campaign", "campaign_id"), ("request", "request_id"))
    )
    return "\n UNION ALL ".join(branches)
