"""Welcome emails: per-store SMTP settings, Jinja2 rendering (with per-store overrides) and sending.

Per-store settings live in ``Installation.settings`` (every key optional; the environment's ``SDA_SMTP_*`` and
``SDA_EMAIL_FROM`` are the defaults)::

    {
      "email_from": "My Store <shop@example.com>",
      "smtp": {"host": "smtp.example.com", "port": 587, "username": "shop", "password_encrypted": "<Fernet>",
               "use_tls": false, "start_tls": true},
      "templates": {"welcome_subject": "...", "welcome_html": "...", "welcome_text": "..."}
    }

``smtp.password_encrypted`` is ``crypto.encrypt(password)`` (preferred); a plain ``smtp.password`` is accepted
too. Passwords are never logged or put in error messages. Template overrides are Jinja2 source rendered in a
sandbox (staff-written templates cannot reach Python internals); the HTML one is autoescaped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from saleor_discord_app.config import get_settings
from saleor_discord_app.crypto import decrypt

_templates = Environment(
    loader=PackageLoader("saleor_discord_app.invitations", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    auto_reload=False,
    keep_trailing_newline=True,
)
_sandbox_html = SandboxedEnvironment(autoescape=True)
_sandbox_text = SandboxedEnvironment(autoescape=False)

DEFAULT_SUBJECT = "Your Discord access for order #{{ order_number }}"
REMINDER_SUBJECT = "Reminder: your Discord access for order #{{ order_number }} is waiting"
SMTP_TIMEOUT_SECONDS = 30.0


class EmailError(Exception):
    """The email was not sent. ``retryable``: a later attempt may succeed (server down, 4xx)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    use_tls: bool
    start_tls: bool

    def __repr__(self) -> str:  # never show the password, even in a traceback's locals
        return f"SmtpConfig(host={self.host!r}, port={self.port}, username={self.username!r}, password=***)"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def smtp_config(store_settings: dict[str, Any]) -> SmtpConfig:
    """The store's SMTP server, or the environment's. Raises EmailError (retryable) when none is set."""
    env = get_settings()
    store = _dict(store_settings.get("smtp"))
    if store.get("host"):
        password: str | None = None
        if store.get("password_encrypted"):
            try:
                password = decrypt(str(store["password_encrypted"]))
            except ValueError as exc:
                raise EmailError("The store's SMTP password cannot be decrypted with SDA_SECRET_KEY; enter it "
                                 "again in the app's email settings.", retryable=False) from exc
        elif store.get("password"):
            password = str(store["password"])
        return SmtpConfig(
            host=str(store["host"]),
            port=int(store.get("port") or 587),
            username=str(store["username"]) if store.get("username") else None,
            password=password,
            use_tls=bool(store.get("use_tls", False)),
            start_tls=bool(store.get("start_tls", False)),
        )
    if not env.smtp_host:
        raise EmailError("No SMTP server is configured (the store's email settings or SDA_SMTP_HOST).",
                         retryable=True)
    return SmtpConfig(
        host=env.smtp_host,
        port=env.smtp_port,
        username=env.smtp_username or None,
        password=env.smtp_password.get_secret_value() or None,
        use_tls=env.smtp_use_tls,
        start_tls=env.smtp_start_tls,
    )


def sender(store_settings: dict[str, Any]) -> str:
    configured = store_settings.get("email_from")
    if isinstance(configured, str) and configured.strip():
        return configured.strip()
    return get_settings().email_from


def message_id(installation_id: int, membership_id: int, send_number: int) -> str:
    """The same send always has the same Message-ID, so a repeated delivery is recognisable as a duplicate."""
    host = urlsplit(get_settings().public_url).hostname or "localhost"
    return f"<invitation.{installation_id}.{membership_id}.{send_number}@{host}>"


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def render_welcome(context: dict[str, Any], store_settings: dict[str, Any]) -> Rendered:
    """Subject, HTML and text of a welcome (or reminder) email; the store's overrides win when set."""
    overrides = _dict(store_settings.get("templates"))
    reminder = bool(context.get("reminder"))

    def pick(key: str) -> str | None:
        value = overrides.get(key)
        return value if isinstance(value, str) and value.strip() else None

    subject_source = pick("welcome_subject") or (REMINDER_SUBJECT if reminder else DEFAULT_SUBJECT)
    subject = " ".join(_sandbox_text.from_string(subject_source).render(**context).split())
    context = {**context, "subject_line": subject}
    html_source, text_source = pick("welcome_html"), pick("welcome_text")
    html = (_sandbox_html.from_string(html_source).render(**context) if html_source
            else _templates.get_template("welcome.html").render(**context))
    text = (_sandbox_text.from_string(text_source).render(**context) if text_source
            else _templates.get_template("welcome.txt").render(**context))
    return Rendered(subject=subject, html=html, text=text)


def build_message(*, rendered: Rendered, to: str, from_: str, msg_id: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = from_
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = msg_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def _retryable(exc: aiosmtplib.SMTPException) -> bool:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(400 <= r.code < 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return not 500 <= exc.code < 600
    return True  # connection, timeout, server disconnected


def send_message(message: EmailMessage, config: SmtpConfig) -> None:
    """Send over SMTP (aiosmtplib, run to completion here: Celery tasks are synchronous)."""

    async def _send() -> None:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.use_tls,
            start_tls=config.start_tls,
            timeout=SMTP_TIMEOUT_SECONDS,
        )

    try:
        asyncio.run(_send())
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
        raise EmailError(f"SMTP {config.host}:{config.port} unreachable: {type(exc).__name__}",
                         retryable=True) from exc
    except aiosmtplib.SMTPException as exc:
        detail = f"{type(exc).__name__}: {getattr(exc, 'message', '') or exc}"
        raise EmailError(f"SMTP {config.host}:{config.port} refused or failed: {detail}"[:900],
                         retryable=_retryable(exc)) from exc
    except (OSError, TimeoutError) as exc:
        raise EmailError(f"SMTP {config.host}:{config.port} unreachable: {type(exc).__name__}",
                         retryable=True) from exc


def valid_address(address: str) -> bool:
    _, parsed = parseaddr(address)
    return "@" in parsed and " " not in parsed
