"""What `make run` shows a person: one line per request and the pipeline's notable events.

Everything the functions, pollers and libraries write (JSON logs, metrics,
warnings, tracebacks) goes to a log file instead: file descriptors 1 and 2 are
pointed at it, so child processes and C libraries follow too. The console keeps
the terminal, reads requests from the gateway and follows the log file for the
few records a person wants to see (a campaign released or completed, an import
finished, an error), in colour where the terminal takes it.
"""

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

_RESET, _BOLD, _DIM = "\033[0m", "\033[1m", "\033[2m"
_GREEN, _CYAN, _YELLOW, _RED, _MAGENTA = "\033[32m", "\033[36m", "\033[33m", "\033[31m", "\033[35m"


def _short(value: Any) -> str:
    return str(value)[:8]


def _count(number: Any, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


# Log messages worth a line, and how to word them.
_EVENTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "campaign dispatched": lambda r: (
        f"campaign {_short(r.get('campaign_id'))} released: {_count(r.get('recipients'), 'recipient', 'recipients')}, "
        f"{_count(r.get('credits'), 'credit', 'credits')} reserved, {_count(r.get('batches'), 'batch', 'batches')}"
        + (f", {r['skipped_blocked']} skipped (blocked or unpriced)" if r.get("skipped_blocked") else "")
    ),
    "campaign completed": lambda r: (
        f"campaign {_short(r.get('campaign_id'))} completed: {_count(r.get('credits'), 'credit', 'credits')} spent"
    ),
    "campaign failed to start": lambda r: f"campaign {_short(r.get('campaign_id'))} failed to start: {r.get('reason')}",
    "import completed": lambda r: (
        f"import {_short(r.get('import_id'))} finished: {r.get('imported')} imported, {r.get('invalid')} invalid"
    ),
}


class Console:
    def __init__(self, terminal: TextIO, log_path: Path, color: bool) -> None:
        self.terminal = terminal
        self.log_path = log_path
        self.color = color
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None

    @classmethod
    def take_over(cls, log_path: Path) -> "Console":
        """Sends fds 1 and 2 to `log_path` (appended, mode 600) and keeps the terminal for the console."""
        sys.stdout.flush()
        sys.stderr.flush()
        terminal = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(descriptor, 1)
        os.dup2(descriptor, 2)
        os.close(descriptor)
        color = terminal.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
        return cls(terminal, log_path, color)

    def _paint(self, text: str, *styles: str) -> str:
        return f"{''.join(styles)}{text}{_RESET}" if self.color else text

    def say(self, text: str) -> None:
        with self._lock:
            self.terminal.write(text + "\n")
            self.terminal.flush()

    def request(self, method: str, path: str, status: int, milliseconds: float) -> None:
        """The gateway's report of one request: the path without its query (which may hold numbers)."""
        colour = _GREEN if status < 300 else _CYAN if status < 400 else _YELLOW if status < 500 else _RED
        self.say(
            f"{self._paint(time.strftime('%H:%M:%S'), _DIM)} {self._paint(f'{method:<6}', _BOLD)} "
            f"{path.split('?', 1)[0]} {self._paint(str(status), colour)} {milliseconds:.0f} ms"
        )

    def record(self, line: str) -> None:
        """One line of the log file: a notable event or an error gets a console line; the rest stays there."""
        try:
            record = json.loads(line)
        except ValueError:
            if line.startswith("Traceback"):
                self.say(self._paint(f"error: a traceback was written to {self.log_path}", _RED))
            return
        if not isinstance(record, dict):
            return
        message = str(record.get("message", ""))
        stamp = self._paint(time.strftime("%H:%M:%S"), _DIM)
        if message in _EVENTS:
            self.say(f"{stamp} {self._paint(_EVENTS[message](record), _MAGENTA)}")
        elif record.get("level") in ("ERROR", "CRITICAL"):
            where = record.get("function_name") or record.get("location") or ""
            self.say(f"{stamp} {self._paint(f'error in {where}: {message}', _RED)} (details in {self.log_path})")

    def follow(self) -> None:
        """Reads what is appended to the log file from now on, in a thread, until `stop`."""
        position = self.log_path.stat().st_size if self.log_path.exists() else 0

        def run() -> None:
            nonlocal position
            pending = b""
            while not self._stop.is_set():
                with self.log_path.open("rb") as log:
                    log.seek(position)
                    chunk = log.read()
                position += len(chunk)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self.record(line.decode("utf-8", "replace"))
                self._stop.wait(0.2)

        self._follower = threading.Thread(target=run, name="console", daemon=True)
        self._follower.start()

    def stop(self) -> None:
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=2)
