"""Wall-clock time and waiting, passed to code that paces itself, so tests hand in a clock that records waits."""

import time


class Clock:
    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = Clock()
