"""Scheduled upkeep that keeps the database ready without anyone present."""

from psycopg import Connection
from psycopg.rows import DictRow

# Partitions exist this many months ahead, so a missed run or two never sends
# rows into the default partition.
PARTITION_MONTHS_AHEAD = 3


def create_delivery_log_partitions(conn: Connection[DictRow], months_ahead: int = PARTITION_MONTHS_AHEAD) -> list[str]:
    """Creates the monthly sms_delivery_logs partitions still missing; returns their names."""
    rows = conn.execute("SELECT create_delivery_log_partitions(%s) AS name", (months_ahead,)).fetchall()
    return [row["name"] for row in rows]
