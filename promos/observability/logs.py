"""Logs: one JSON object per line on stderr (text when stderr is a terminal), never a secret.

Stdlib ``logging`` with a formatter on orjson (already a dependency, and the fastest JSON
encoder here): every line has the same few fields, chosen here, so that nothing a caller
attaches to a record (``extra``) can carry a secret into the log. Access lines
(``promos.access``) are written by ``promos.observability.requests``; every other line,
uvicorn's too, goes through the same formatter, with the request's id when it is logged while
a request is served, and with any discount generator user secret in it masked.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

from promos.compat.discounts import redact
from promos.settings import Settings

# The id of the request being served in this task (None outside a request).
REQUEST_ID: ContextVar[str | None] = ContextVar("promos_request_id", default=None)

ACCESS_LOGGER = "promos.access"

# One access line: method, route template, status, duration in ms, request id, credential id.
Access = tuple[str, str, int, float, str, str | None]

LogFormat = Literal["json", "text"]


def chosen_format(setting: str, stream: TextIO | None = None) -> LogFormat:
    """``json`` or ``text`` as set; for ``auto``: text on a terminal, JSON anywhere else."""
    if setting in ("json", "text"):
        return "text" if setting == "text" else "json"
    stream = stream if stream is not None else sys.stderr
    return "text" if stream.isatty() else "json"


def _time(record: logging.LogRecord) -> datetime:
    return datetime.fromtimestamp(record.created, UTC)


class JSONFormatter(logging.Formatter):
    """``{"time","level","logger","message",...}``: access fields, or request id and exception."""

    def format(self, record: logging.LogRecord) -> str:
        access: Access | None = getattr(record, "access", None)
        if access is not None:
            method, route, status, duration_ms, request_id, credential = access
            entry: dict[str, Any] = {
                "time": _time(record),
                "level": "info",
                "logger": record.name,
                "message": "request",
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "request_id": request_id,
                "credential": credential,
            }
            return orjson.dumps(entry, option=orjson.OPT_UTC_Z).decode()
        entry = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        serving = REQUEST_ID.get()
        if serving is not None:
            entry["request_id"] = serving
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return orjson.dumps(entry, option=orjson.OPT_UTC_Z).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message`` for people at a terminal, with the same redaction."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        access: Access | None = getattr(record, "access", None)
        if access is not None:
            method, route, status, duration_ms, request_id, credential = access
            by = f" by {credential}" if credential else ""
            line = f"{method} {route} {status} {duration_ms:.1f} ms [{request_id}]{by}"
            return f"{self.formatTime(record)} {'INFO':<7} {record.name}: {line}"
        text = redact(super().format(record))
        serving = REQUEST_ID.get()
        return f"{text} [{serving}]" if serving is not None else text


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
        # Replaced by promos.access, which logs the route template, never the raw path.
        "uvicorn.access": "WARNING",
        # Access lines are info: written whatever PROMOS_LOG_LEVEL says, unless
        # PROMOS_ACCESS_LOG=false.
        ACCESS_LOGGER: "INFO" if settings.access_log else "WARNING",
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
