"""Logs: one JSON object per line on stderr (text when stderr is a terminal), never a secret.

Every line but the access lines goes through stdlib ``logging``, uvicorn's too, with a
formatter on orjson (already a dependency, and the fastest JSON encoder here): the same few
fields, chosen here, so that nothing a caller attaches to a record (``extra``) can carry a
secret into the log; the request's id when the line is logged while a request is served; any
discount generator user secret masked. Access lines (``AccessLog``) are written straight to
stderr in the same format: a ``logging`` record and its handler cost several times the rest
of the line, on every request.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Literal, TextIO

import orjson
from sqlalchemy.exc import StatementError

from promos.compat.discounts import redact
from promos.settings import Settings

# The id of the request being served in this task (None outside a request), as the ASCII
# bytes of its X-Request-ID header: decoded only when a line is written.
REQUEST_ID: ContextVar[bytes | None] = ContextVar("promos_request_id", default=None)

ACCESS_LOGGER = "promos.access"

# One access line: method, route template, status, duration in ms, request id, credential id.
Access = tuple[str, str, int, float, bytes, str | None]

LogFormat = Literal["json", "text"]


def chosen_format(setting: str, stream: TextIO | None = None) -> LogFormat:
    """``json`` or ``text`` as set; for ``auto``: text on a terminal, JSON anywhere else."""
    if setting in ("json", "text"):
        return "text" if setting == "text" else "json"
    stream = stream if stream is not None else sys.stderr
    return "text" if stream.isatty() else "json"


class _UTCTime:
    """``2026-03-01T12:00:00.123456Z`` for a record's time; the seconds' text kept per second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def iso(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._text}.{int((created - second) * 1_000_000):06d}Z"


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

# Errors whose text may quote a statement's values: asyncpg's ("invalid input for query
# argument $1: 'value'", PostgreSQL's "DETAIL:  Key (code)=(value) already exists"), SQLAlchemy's
# adapters of them, which repeat it, and SQLAlchemy's statement errors, which repeat their
# driver's too. They are logged by type, SQLSTATE and the names the server gives (constraint,
# table, column), never by their text; nor is the text of what caused them (asyncpg's
# ValueError naming the value it could not encode).
_DRIVER_MODULES = ("asyncpg", "sqlalchemy.dialects", "sqlalchemy.connectors")
_NAMES = ("sqlstate", "constraint_name", "table_name", "column_name")
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def format_exception(error: BaseException) -> str:
    """``error``'s traceback as Python prints it, with the text of database errors withheld."""
    lines: list[str] = []
    _format(error, withheld=False, lines=lines, seen=set())
    return "".join(lines).rstrip("\n")


def _format(error: BaseException, *, withheld: bool, lines: list[str], seen: set[int]) -> None:
    seen.add(id(error))
    withheld = withheld or _quotes_values(error)
    cause, context = error.__cause__, error.__context__
    if cause is not None and id(cause) not in seen:
        _format(cause, withheld=withheld, lines=lines, seen=seen)
        lines.append(_CAUSE)
    elif context is not None and not error.__suppress_context__ and id(context) not in seen:
        _format(context, withheld=withheld, lines=lines, seen=seen)
        lines.append(_CONTEXT)
    if error.__traceback__ is not None:
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_tb(error.__traceback__))
    lines.append(f"{_type_name(error)}: {_text(error, withheld=withheld)}\n")
    if isinstance(error, BaseExceptionGroup):
        for n, member in enumerate(error.exceptions, 1):
            lines.append(f"\n[{n} of {len(error.exceptions)} in the group]\n")
            _format(member, withheld=withheld, lines=lines, seen=seen)


def _quotes_values(error: BaseException) -> bool:
    return isinstance(error, StatementError) or type(error).__module__.startswith(_DRIVER_MODULES)


def _type_name(error: BaseException) -> str:
    kind = type(error)
    if kind.__module__ in ("builtins", "__main__"):
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _text(error: BaseException, *, withheld: bool) -> str:
    if isinstance(error, StatementError):
        driver = _type_name(error.orig) if error.orig is not None else "statement"
        return f"({driver}) [SQL: {error.statement}]"
    if withheld:
        names = [f"{name} {value}" for name in _NAMES if (value := getattr(error, name, None))]
        return f"[text withheld: it may quote values] {', '.join(names)}".rstrip()
    try:
        return str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the log line
        return "<the exception's text could not be made>"


class _SafeTracebacks(logging.Formatter):
    """A formatter whose tracebacks are ``format_exception``'s."""

    def formatException(self, ei: ExcInfo) -> str:  # noqa: N802 - logging's name
        return format_exception(ei[1]) if ei[1] is not None else ""


class JSONFormatter(_SafeTracebacks):
    """``{"time","level","logger","message"}``, with ``request_id`` and ``exception`` if any."""

    def __init__(self) -> None:
        super().__init__()
        self._time = _UTCTime()

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self._time.iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        serving = REQUEST_ID.get()
        if serving is not None:
            entry["request_id"] = serving.decode("ascii")
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return orjson.dumps(entry).decode()


class TextFormatter(_SafeTracebacks):
    """``time LEVEL logger: message`` for people at a terminal, with the same redaction."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info:  # made here, never taken from another handler's formatter
            record.exc_text = self.formatException(record.exc_info)
        text = redact(super().format(record))
        serving = REQUEST_ID.get()
        return f"{text} [{serving.decode()}]" if serving is not None else text


class AccessLog:
    """One line per request on stderr, in the log's format, whatever PROMOS_LOG_LEVEL says.

    Written with one ``write`` of a whole line (stderr is line-buffered: one system call, so
    the lines of several workers never mix). ``sys.stderr`` is looked up at each write, as
    ``logging`` does not: what replaces it (a test's capture) gets the lines.
    """

    def __init__(self, log_format: LogFormat) -> None:
        self._json = log_format == "json"
        self._time = _UTCTime()

    def write(self, access: Access) -> None:
        method, route, status, duration_ms, request_id, credential = access
        now = time.time()
        if self._json:
            line = orjson.dumps(
                {
                    "time": self._time.iso(now),
                    "level": "info",
                    "logger": ACCESS_LOGGER,
                    "message": "request",
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                    "request_id": request_id.decode("ascii"),
                    "credential": credential,
                },
                option=orjson.OPT_APPEND_NEWLINE,
            ).decode()
        else:
            # As TextFormatter writes a record's time: local, with milliseconds.
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
            by = f" by {credential}" if credential else ""
            line = (
                f"{stamp},{int(now % 1 * 1000):03d} INFO    {ACCESS_LOGGER}: {method} {route} "
                f"{status} {duration_ms:.1f} ms [{request_id.decode()}]{by}\n"
            )
        stream = sys.stderr
        stream.write(line)
        stream.flush()


# Libraries whose debug or info lines would carry secrets: SQL parameters (a webhook
# subscription's secret is stored as given), request URLs (a receiver's URL may hold its key),
# form fields. They stay at WARNING whatever PROMOS_LOG_LEVEL says.
TALKATIVE = ("sqlalchemy", "aiosqlite", "asyncpg", "httpx", "httpcore", "multipart")


def logger_levels(settings: Settings) -> dict[str, str]:
    """The level of each logger that differs from the root's (``PROMOS_LOG_LEVEL``)."""
    level = settings.log_level.upper()
    return {
        "uvicorn": level,
        "uvicorn.error": level,
        # Replaced by Promos' own access lines (AccessLog): the route template, never the path.
        "uvicorn.access": "WARNING",
        **dict.fromkeys(TALKATIVE, "WARNING"),
    }


def log_config(settings: Settings, *, stream: str = "ext://sys.stderr") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a process (uvicorn applies it in every worker).

    One handler, on the root logger: uvicorn's lines and every library's go through the same
    formatter (uvicorn's own access lines are off).
    """
    formatter = JSONFormatter if chosen_format(settings.log_format) == "json" else TextFormatter
    loggers: dict[str, Any] = {
        name: {"level": level, "handlers": [], "propagate": True}
        for name, level in logger_levels(settings).items()
    }
    loggers["uvicorn.access"]["propagate"] = False
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"promos": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "promos", "stream": stream}
        },
        "root": {"level": settings.log_level.upper(), "handlers": ["stderr"]},
        "loggers": loggers,
    }
