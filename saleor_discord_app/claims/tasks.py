"""``!claim CODE`` messages (F13): every 5 minutes, read each server's verification channel and redeem.

Beat runs ``claims.scan_messages``, which fans out one ``claims.scan_server`` per Discord server that has a
verification channel (stores with the app installed). A scan reads the messages posted after the server's
``last_claim_message_id``, oldest first, 100 at a time (the very first scan starts from the newest 100, so
old history is not replayed), redeems each ``!claim CODE`` as its author, replies in the channel (a reply to
the message, mentions disabled, never repeating the code) and stores the message id in the same transaction
as the redemption. The store is a compare-and-set on the previous id, so a message is processed at most once
even when two scans of one server overlap or a scan is re-run: the later one finds the id moved and stops.

**This needs the MESSAGE_CONTENT privileged intent** (Developer Portal → Bot → Privileged Gateway Intents).
It applies to the REST API too: without it Discord returns every message's ``content`` empty, except
messages that @mention the bot, so ``!claim CODE`` is never seen (``@Bot !claim CODE`` still works). A scan
that reads user messages whose content is all empty records a health hint on the server saying so. The
``/claim`` slash command needs no intent and replies privately: prefer it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import structlog

from saleor_discord_app.claims import repository, service
from saleor_discord_app.config import get_settings
from saleor_discord_app.db import session_scope
from saleor_discord_app.discord.client import DiscordClient
from saleor_discord_app.discord.connect import bot_client
from saleor_discord_app.discord.errors import DiscordError, NeedsAttention, RetryLater
from saleor_discord_app.models import DiscordServer, Installation, InstallationStatus, LinkMethod
from saleor_discord_app.sqltypes import utcnow
from saleor_discord_app.worker import celery_app

log = structlog.get_logger(__name__)

SCAN_INTERVAL_SECONDS = 300
PAGE_SIZE = 100
MAX_PAGES_PER_SCAN = 10
"""At most 1,000 messages per scan; the next scan carries on from the stored id."""
ATTEMPT_RETENTION = timedelta(days=1)

CLAIM_MESSAGE = re.compile(r"^\s*(?:<@!?(?P<mention>\d+)>\s*)?!claim(?![a-z0-9])(?P<code>.*)$",
                           re.IGNORECASE | re.DOTALL)
MAX_CODE_TEXT = 64

HINT_PREFIX = "Claim messages: "
CONTENT_HINT = (
    HINT_PREFIX + "the bot can't read messages in the verification channel, so `!claim CODE` is ignored. "
    "Enable the MESSAGE CONTENT intent for the bot in the Discord Developer Portal, or ask customers to use "
    "/claim (or to write @Bot !claim CODE)."
)
CANNOT_READ_START = HINT_PREFIX + "the bot can't read the verification channel"
CANNOT_READ_HINT = CANNOT_READ_START + (
    " ({error}). Check that the channel exists and the bot has View Channel and Read Message History there."
)
CANNOT_REPLY_START = HINT_PREFIX + "the bot can't reply in the verification channel"
CANNOT_REPLY_HINT = CANNOT_REPLY_START + " ({error}). Give it Send Messages there."
USAGE = "Type your claim code after !claim, like: !claim ABCD-EFGH-JKLM (or use /claim)."


@dataclass
class ScanReport:
    read: int = 0
    claims: int = 0
    linked: int = 0
    replies: int = 0
    hidden: int = 0
    """User messages whose content came back empty (the MESSAGE_CONTENT intent is probably off)."""
    stopped: str | None = None


class _LostRace(Exception):
    """Another scan of the same server stored a newer message id first."""


def parse_claim(content: str, bot_user_ids: set[str]) -> str | None:
    """The code text of a ``!claim`` message ("" when the code is missing), else None."""
    match = CLAIM_MESSAGE.match(content)
    if match is None:
        return None
    mention = match.group("mention")
    if mention is not None and mention not in bot_user_ids:
        return None  # "@someone !claim ..." is not addressed to us
    return match.group("code").strip()[:MAX_CODE_TEXT]


def _is_from_bot(message: dict[str, Any], bot_user_ids: set[str]) -> bool:
    author = message.get("author") or {}
    return bool(author.get("bot")) or str(author.get("id")) in bot_user_ids or bool(message.get("webhook_id"))


def _mentions(content: str, user_ids: set[str]) -> bool:
    return any(f"<@{uid}>" in content or f"<@!{uid}>" in content for uid in user_ids)


def _looks_hidden(message: dict[str, Any]) -> bool:
    return not message.get("content") and not any(
        message.get(key) for key in ("attachments", "embeds", "sticker_items", "components")
    )


def _set_hints(server_id: int, *, add: list[str], remove_prefixes: tuple[str, ...]) -> None:
    """Add/remove this module's health hints on the server, leaving everybody else's alone."""
    with session_scope() as session:
        server = session.get(DiscordServer, server_id)
        if server is None:
            return
        problems = [p for p in server.health_problems if not (p.startswith(remove_prefixes) and p not in add)]
        problems += [hint for hint in add if hint not in problems]
        if problems != server.health_problems:
            server.health_problems = problems  # a new list, so the JSON column is seen as changed
            session.add(server)


class _Scanner:
    def __init__(self, client: DiscordClient, server: DiscordServer, bot_user_ids: set[str]) -> None:
        assert server.id is not None
        assert server.verification_channel_id is not None
        self.client = client
        self.server_id = server.id
        self.guild_id = server.guild_id
        self.channel_id = server.verification_channel_id
        self.last = server.last_claim_message_id
        self.bot_user_ids = bot_user_ids
        self.report = ScanReport()
        self.visible_user_messages = 0
        self.reply_error: str | None = None
        self._role_names: dict[str, str] | None = None

    def role_names(self, guild_id: str, role_ids: Any) -> list[str]:
        names = self._role_names or {}
        return [names[role_id] for role_id in role_ids if role_id in names]

    def _load_role_names(self) -> None:
        if self._role_names is None:
            try:
                self._role_names = {str(r["id"]): str(r["name"]) for r in self.client.get_roles(self.guild_id)}
            except DiscordError:
                self._role_names = {}

    def run(self) -> ScanReport:
        for _ in range(MAX_PAGES_PER_SCAN):
            first_scan = self.last is None
            batch = self.client.get_messages(self.channel_id, after=self.last, limit=PAGE_SIZE)
            for message in sorted(batch, key=lambda m: int(m["id"])):  # Discord lists newest first
                self.process(message)
            if first_scan or len(batch) < PAGE_SIZE:
                break
        return self.report

    def process(self, message: dict[str, Any]) -> None:
        message_id = str(message["id"])
        self.report.read += 1
        code_text: str | None = None
        if not _is_from_bot(message, self.bot_user_ids) and message.get("type", 0) in (0, 19):
            content = str(message.get("content") or "")
            if _looks_hidden(message):
                self.report.hidden += 1
            elif not _mentions(content, self.bot_user_ids):
                self.visible_user_messages += 1  # readable without @mentioning the bot: the intent is on
            code_text = parse_claim(content, self.bot_user_ids)
        if code_text:
            self._load_role_names()  # before the transaction: no HTTP call while holding the write lock
        reply: str | None = None
        with session_scope() as session:
            if not repository.advance_last_message(session, self.server_id, expected=self.last, new=message_id):
                raise _LostRace
            if code_text == "":
                reply = USAGE
            elif code_text is not None:
                author = message.get("author") or {}
                result = service.redeem(
                    session,
                    code=code_text,
                    discord_user_id=str(author.get("id")),
                    discord_username=str(author.get("username") or ""),
                    guild_id=self.guild_id,
                    via=LinkMethod.CLAIM_MESSAGE,
                    role_names=self.role_names,
                )
                self.report.claims += 1
                self.report.linked += int(result.ok)
                reply = result.message
        self.last = message_id
        if reply is not None:
            self._reply(message_id, reply)

    def _reply(self, message_id: str, content: str) -> None:
        try:
            self.client.send_message(self.channel_id, content, reply_to=message_id)
            self.report.replies += 1
        except NeedsAttention as exc:
            self.reply_error = exc.reason
            log.warning("claims.scan.reply_refused", server_id=self.server_id, error=exc.reason)
        except DiscordError as exc:  # the claim itself is done; a lost reply is not worth a re-scan
            log.warning("claims.scan.reply_failed", server_id=self.server_id, error=str(exc))


def scan_channel(server_id: int) -> ScanReport:
    """Read new messages of one server's verification channel and redeem the ``!claim`` codes in them."""
    with session_scope() as session:
        server = session.get(DiscordServer, server_id)
        installation = session.get(Installation, server.installation_id) if server is not None else None
        if (server is None or installation is None or installation.status != InstallationStatus.ACTIVE
                or not server.verification_channel_id):
            return ScanReport(stopped="no verification channel")
    settings = get_settings()
    bot_user_ids = {settings.discord_client_id} - {""}
    add: list[str] = []
    managed = (CANNOT_READ_START, CANNOT_REPLY_START)
    try:
        with bot_client() as client:
            if not bot_user_ids:
                bot_user_ids = {str(client.get_current_user()["id"])}
            scanner = _Scanner(client, server, bot_user_ids)
            try:
                report = scanner.run()
            except _LostRace:
                report = scanner.report
                report.stopped = "another scan is ahead"
    except NeedsAttention as exc:
        log.warning("claims.scan.cannot_read", server_id=server_id, error=exc.reason)
        _set_hints(server_id, add=[CANNOT_READ_HINT.format(error=exc.reason)], remove_prefixes=managed)
        return ScanReport(stopped=exc.reason)
    except RetryLater as exc:
        log.info("claims.scan.retry_later", server_id=server_id, error=str(exc))
        return ScanReport(stopped=str(exc))
    if scanner.reply_error:
        add.append(CANNOT_REPLY_HINT.format(error=scanner.reply_error))
    remove: tuple[str, ...] = managed
    if report.hidden and not scanner.visible_user_messages:
        log.warning("claims.scan.message_content_missing", server_id=server_id, hidden=report.hidden)
        add.append(CONTENT_HINT)
    elif scanner.visible_user_messages:
        remove += (CONTENT_HINT,)
    _set_hints(server_id, add=add, remove_prefixes=remove)
    log.info("claims.scan.done", server_id=server_id, **asdict(report))
    return report


@celery_app.task(name="claims.scan_server", acks_late=True)
def scan_server(server_id: int) -> dict[str, Any]:
    """Scan one server's verification channel (idempotent: re-running processes nothing new)."""
    return asdict(scan_channel(server_id))


@celery_app.task(name="claims.scan_messages")
def scan_messages() -> int:
    """Beat, every 5 minutes: one ``claims.scan_server`` per server with a verification channel."""
    with session_scope() as session:
        server_ids = list(repository.scannable_server_ids(session))
        repository.purge_attempts(session, utcnow() - ATTEMPT_RETENTION)
    sent = 0
    for server_id in server_ids:
        try:
            scan_server.apply_async(args=(server_id,), expires=SCAN_INTERVAL_SECONDS, retry=False)
            sent += 1
        except Exception:
            log.warning("claims.scan.dispatch_failed", server_id=server_id)
    return sent
