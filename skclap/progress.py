"""Progress bars that read well wherever they are written: a terminal, a notebook, or a log file.

tqdm redraws its bar in place with carriage returns. On a terminal that is one line; written to a
file or a pipe (``skclap embed ... 2> log``, a batch job's log) it becomes a single line of every
redraw. :func:`progress_bar` keeps tqdm's bar on terminals and in notebooks, and elsewhere writes
one plain line per update, at most every :data:`LOG_INTERVAL` seconds, and the last one when done.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import IO, Any

from tqdm import autonotebook
from tqdm import tqdm as std_tqdm
from tqdm.auto import tqdm as auto_tqdm

__all__ = ["LOG_INTERVAL", "progress_bar"]

#: Seconds between two lines of a bar written to a file or a pipe.
LOG_INTERVAL = 30.0


class _LineBar(std_tqdm):
    """tqdm's bar as lines: each update on a line of its own, without carriage returns."""

    @staticmethod
    def status_printer(file: IO[str]) -> Callable[[str], None]:
        started = [False]

        def print_status(s: str) -> None:
            if not s:
                return
            # a line is ended by the next one (tqdm's close ends the last with a newline)
            file.write(("\n" if started[0] else "") + s)
            file.flush()
            started[0] = True

        return print_status


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(iterable: Iterable[Any] | None = None, *, file: IO[str] | None = None, **kwargs: Any) -> std_tqdm:
    """A tqdm progress bar (``tqdm.auto``: a widget in notebooks) on ``file`` (default standard
    error); where that is not a terminal, plain lines (see the module docs). Takes tqdm's arguments."""
    in_notebook = autonotebook.tqdm is not std_tqdm
    if in_notebook or kwargs.get("disable") or _is_terminal(file if file is not None else sys.stderr):
        return auto_tqdm(iterable, file=file, **kwargs)
    kwargs["mininterval"] = max(float(kwargs.get("mininterval", 0.1)), LOG_INTERVAL)
    kwargs["leave"] = True  # the last line stays: a log keeps the total
    return _LineBar(iterable, file=file, dynamic_ncols=False, ncols=kwargs.pop("ncols", 100), **kwargs)
