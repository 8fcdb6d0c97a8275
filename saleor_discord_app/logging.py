"""structlog set-up: console in development, JSON elsewhere; secrets never reach a log line."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEYS = {
    "token",
    "app_token",
    "auth_token",
    "access_token",
    "refresh_token",
    "bot_token",
    "secret",
    "client_secret",
    "password",
    "authorization",
    "oauth_code",
    "claim_code",
}
"""Log keys whose values are redacted. Not "code": in this app's logs that is Discord's error code."""


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key.lower() in SECRET_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(json_logs: bool = False, level: int = logging.INFO) -> None:
    renderer: Any = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
    )
