"""A clock for code that paces itself: it records the waits instead of taking them."""

import time

from smsplatform.core.clock import Clock


class RecordingClock(Clock):
    def __init__(self, now: float | None = None) -> None:
        self.now = now  # a fixed time, or None for the real one
        self.waits: list[float] = []

    def time(self) -> float:
        return self.now if self.now is not None else time.time()

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
