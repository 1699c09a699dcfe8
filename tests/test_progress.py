"""Progress bars written to a file or a pipe are lines, not one line of carriage returns (issue 48,
item 8); on a terminal they stay tqdm's bar."""

from __future__ import annotations

import io

import skclap.progress as progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(stream: io.StringIO, steps: int = 5) -> str:
    for _ in progress.progress_bar(range(steps), file=stream, desc="embedding audio", unit="clip", mininterval=0):
        pass
    return stream.getvalue()


def test_a_bar_written_to_a_file_is_one_line_per_update(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.0)  # every update, so that the test sees several
    log = run(io.StringIO())
    assert "\r" not in log and log.endswith("\n")
    lines = log.splitlines()
    assert len(lines) >= 2 and all(line.startswith("embedding audio:") for line in lines)
    assert "5/5" in lines[-1]
    # on a terminal: tqdm's bar, redrawn in place
    assert "\r" in run(Terminal())


def test_a_log_gets_a_line_at_most_every_interval():
    log = run(io.StringIO(), steps=1000)  # a fast loop: the first line and the last
    lines = log.splitlines()
    assert len(lines) <= 3 and "1000/1000" in lines[-1]
    assert progress.progress_bar(range(3), file=io.StringIO(), disable=True).disable
