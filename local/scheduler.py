"""EventBridge schedules: invokes each scheduled function with a Scheduled Event at its rate."""

import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from local.runtime import ACCOUNT_ID, REGION, FunctionRuntime
from local.template import ScheduleSpec

log = logging.getLogger("local.scheduler")

_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def rate_seconds(expression: str) -> int:
    match = re.fullmatch(r"rate\((\d+)\s+(minutes?|hours?|days?)\)", expression.strip())
    if not match:
        raise ValueError(f"the local stack runs rate(...) schedules only, not {expression!r}")
    return int(match[1]) * _UNITS[match[2]]


def scheduled_event(schedule: ScheduleSpec, now: datetime | None = None) -> dict[str, Any]:
    moment = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{schedule.function}-{schedule.name}"],
        "detail": {},
    }


class Scheduler:
    """Fires every schedule once at start, then at its rate; `fire` runs one on demand, `run_now` all of them
    at the next second (the stack's SIGUSR1), instead of at their next minute."""

    def __init__(self, schedules: list[ScheduleSpec], runtimes: dict[str, FunctionRuntime]) -> None:
        self.schedules = schedules
        self.runtimes = runtimes
        self._periods = {schedule: rate_seconds(schedule.expression) for schedule in schedules}
        self._due = dict.fromkeys(schedules, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def fire(self, schedule: ScheduleSpec) -> Any:
        return self.runtimes[schedule.function].invoke(scheduled_event(schedule))

    def run_now(self) -> None:
        for schedule in self._due:
            self._due[schedule] = 0.0

    def tick(self, now: float) -> None:
        for schedule, due in self._due.items():
            if now >= due:
                self._due[schedule] = now + self._periods[schedule]
                try:
                    self.fire(schedule)
                except Exception:
                    log.exception("scheduled %s.%s failed", schedule.function, schedule.name)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick(time.monotonic())
            self._stop.wait(1)
