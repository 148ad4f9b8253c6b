"""A plain-text progress bar on stderr: redrawn in place on a terminal, a line per 10 % otherwise."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

WIDTH = 30
REDRAW_SECONDS = 0.2


class ProgressBar:
    def __init__(self, total: int, label: str, stream: TextIO | None = None):
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._last_tenth = -1
        self._lock = threading.Lock()
        self._open = False

    def update(self, done: int, note: str = "") -> None:
        with self._lock:
            now = time.monotonic()
            fraction = min(1.0, done / self.total)
            if self.interactive:
                if now - self._last_draw < REDRAW_SECONDS and done < self.total:
                    return
                self._last_draw = now
                self.stream.write("\r" + self._line(done, fraction, now, note) + "\x1b[K")
                self._open = True
            else:
                tenth = int(fraction * 10)
                if tenth == self._last_tenth:
                    return
                self._last_tenth = tenth
                self.stream.write(self._line(done, fraction, now, note) + "\n")
            self.stream.flush()

    def _line(self, done: int, fraction: float, now: float, note: str) -> str:
        filled = round(fraction * WIDTH)
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        bar = "#" * filled + "-" * (WIDTH - filled)
        text = f"{self.label} [{bar}] {done:,}/{self.total:,} {fraction * 100:5.1f}% {rate:,.0f}/s"
        return f"{text}  {note}" if note else text

    def message(self, text: str) -> None:
        """A line above the bar (a warning while the run goes on)."""
        with self._lock:
            if self._open:
                self.stream.write("\r\x1b[K")
            self.stream.write(text + "\n")
            self._last_draw = 0.0
            self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._open:
                self.stream.write("\n")
                self._open = False
            self.stream.flush()
