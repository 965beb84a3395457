"""A script's output: its Snakemake log file, the user's terminal, and known errors said once."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn


@contextlib.contextmanager
def to_log(path: str | Path):
    """Redirect stdout, stderr and the logging module to ``path`` for the block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as stream, contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield logging.getLogger("lsst_on_aws")
        except SystemExit:
            raise  # a known error, already said by fail(): no traceback
        except BaseException:
            import traceback

            traceback.print_exc(file=sys.stderr)
            raise
        finally:
            root.removeHandler(handler)


def to_terminal(text: str) -> None:
    """A line for the user's terminal, past the redirection of :func:`to_log`."""
    print(text, file=sys.__stderr__, flush=True)


def progress(log: logging.Logger) -> Callable[[str], None]:
    """A callback for long steps: each line it gets goes to the log and to the terminal."""

    def report(line: str) -> None:
        log.info("%s", line)
        to_terminal(line)

    return report


def fail(log: logging.Logger, text: str) -> NoReturn:
    """End a script on a known error: ``text`` in its log and on the terminal, and exit status 1."""
    log.error("%s", text)
    to_terminal(text)
    raise SystemExit(1)
