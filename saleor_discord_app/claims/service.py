"""Claim codes (F8): issued per membership, stored hashed, single-use, expiring, throttled on failure.

A code is 12 characters of Crockford base32 (``0-9A-Z`` without ``I L O U``: no look-alikes), shown as
``ABCD-EFGH-JKLM``: 60 random bits, typeable from an email. Only an HMAC of the normalised code is stored
(keyed with ``crypto.signing_key("claim-code")``), so a database leak doesn't reveal usable codes and a typed
code can still be found with one indexed lookup. Normalising (upper case, no spaces or dashes, ``O``→``0``
and ``I``/``L``→``1``) makes typing variations match.

Redeeming links the Discord user who typed the code to the membership's customer (``link_customer``), which
schedules the Discord sync of every live membership of that customer after the transaction commits.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from sqlmodel import Session

from saleor_discord_app import audit
from saleor_discord_app.claims import repository
from saleor_discord_app.crypto import signing_key
from saleor_discord_app.memberships.links import link_customer
from saleor_discord_app.models import (
    LIVE_STATUSES,
    AccessRule,
    ClaimCode,
    Installation,
    InstallationStatus,
    LinkMethod,
    Membership,
)
from saleor_discord_app.sqltypes import utcnow

log = structlog.get_logger(__name__)

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford base32: 32 symbols, no I, L, O or U."""
CODE_LENGTH = 12
"""12 symbols x 5 bits = 60 bits of entropy."""
GROUP_SIZE = 4
DEFAULT_VALIDITY = timedelta(days=30)
MAX_FAILURES = 5
"""Failed attempts a Discord user may make per ``FAILURE_WINDOW``; the next one is refused unexamined."""
FAILURE_WINDOW = timedelta(minutes=15)

_SEPARATORS = re.compile(r"[\s\-_.]+")
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})

RoleNames = Callable[[str, Sequence[str]], Sequence[str]]
"""(guild_id, role_ids) -> role names, for the success reply (best effort)."""


class ClaimOutcome(StrEnum):
    LINKED = "linked"
    THROTTLED = "throttled"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    OTHER_STORE = "other_store"
    NOT_LIVE = "not_live"


MESSAGES = {
    ClaimOutcome.UNKNOWN: (
        "That claim code isn't valid. Check it for typos (it looks like ABCD-EFGH-JKLM) and try again."
    ),
    ClaimOutcome.USED: "This claim code has already been used. If that wasn't you, contact the store.",
    ClaimOutcome.EXPIRED: "This claim code has expired. Ask the store for a new one.",
    ClaimOutcome.OTHER_STORE: (
        "This claim code is for a different Discord server. Use it in the server of the store you bought from."
    ),
    ClaimOutcome.NOT_LIVE: (
        "The purchase this code belongs to is no longer active (refunded, cancelled or ended), "
        "so there is nothing to claim. Contact the store if you think this is wrong."
    ),
}
ALREADY_YOURS = "You already claimed this code, so your role is on its way. If it doesn't appear, contact the store."


@dataclass(frozen=True)
class RedeemResult:
    outcome: ClaimOutcome
    message: str
    """Customer-facing reply (never contains the code)."""
    membership_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == ClaimOutcome.LINKED

    @property
    def reason(self) -> str:
        return str(self.outcome)


# ---------------------------------------------------------------------------------------------- codes


def generate_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + GROUP_SIZE] for i in range(0, CODE_LENGTH, GROUP_SIZE))


def normalize_code(code: str) -> str | None:
    """The canonical form of a typed code, or None if it can't be one of ours."""
    cleaned = _SEPARATORS.sub("", code).upper().translate(_LOOKALIKES)
    if len(cleaned) != CODE_LENGTH or any(char not in ALPHABET for char in cleaned):
        return None
    return cleaned


def hash_code(normalized: str) -> str:
    return hmac.new(signing_key("claim-code"), normalized.encode(), hashlib.sha256).hexdigest()


def issue_code(session: Session, membership: Membership, *, valid_for: timedelta = DEFAULT_VALIDITY) -> str:
    """Create the membership's claim code and return it in plain text: the only time it is available.

    A membership has one live code: issuing again deletes the unused previous one.
    """
    if membership.id is None:
        raise ValueError("the membership must be saved before a claim code is issued")
    if membership.status not in LIVE_STATUSES:
        raise ValueError("a claim code can only be issued for a live membership")
    repository.delete_unused_codes(session, membership.id)
    code = generate_code()
    normalized = normalize_code(code)
    assert normalized is not None
    expires_at = utcnow() + valid_for
    session.add(
        ClaimCode(
            installation_id=membership.installation_id,
            membership_id=membership.id,
            code_hash=hash_code(normalized),
            expires_at=expires_at,
        )
    )
    session.flush()
    audit.record(
        session,
        "claim.code_issued",
        f"Claim code issued for order #{membership.order_number or membership.order_id}",
        installation_id=membership.installation_id,
        membership_id=membership.id,
        expires_at=expires_at.isoformat(),
    )
    return code


# ---------------------------------------------------------------------------------------------- redeem


def _throttled(session: Session, discord_user_id: str, now: datetime) -> RedeemResult | None:
    failures = repository.recent_failures(session, discord_user_id, now - FAILURE_WINDOW)
    if len(failures) < MAX_FAILURES:
        return None
    # Allowed again once all but MAX_FAILURES - 1 of these failures have left the window.
    frees_at = failures[len(failures) - MAX_FAILURES] + FAILURE_WINDOW
    minutes = max(1, math.ceil((frees_at - now).total_seconds() / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return RedeemResult(ClaimOutcome.THROTTLED, f"Too many attempts, try again in {minutes} {unit}.")


def _roles_phrase(rule: AccessRule, role_names: RoleNames | None) -> str:
    names: list[str] = []
    if role_names is not None and rule.role_ids:
        try:
            names = [name for name in role_names(rule.guild_id, rule.role_ids) if name]
        except Exception:  # the reply must not fail because a name lookup did
            log.warning("claims.role_names.failed", guild_id=rule.guild_id)
    if not names:
        return "your roles" if len(rule.role_ids) > 1 else "your role"
    if len(names) == 1:
        return f"the {names[0]} role"
    return f"the {', '.join(names[:-1])} and {names[-1]} roles"


def redeem(
    session: Session,
    *,
    code: str,
    discord_user_id: str,
    discord_username: str,
    guild_id: str,
    via: LinkMethod,
    role_names: RoleNames | None = None,
) -> RedeemResult:
    """Redeem ``code`` typed by ``discord_user_id`` in ``guild_id``. Never raises for a refused code.

    The caller commits: refusals record a failed ``ClaimAttempt`` (throttling), success marks the code used,
    links the customer and records the timeline entry, all in the session's transaction.
    """
    now = utcnow()
    throttled = _throttled(session, discord_user_id, now)
    if throttled is not None:
        log.info("claims.throttled", discord_user_id=discord_user_id, guild_id=guild_id)
        return throttled

    def refuse(outcome: ClaimOutcome, found: ClaimCode | None = None, *, count: bool = True,
               message: str | None = None) -> RedeemResult:
        if count:
            repository.record_attempt(session, discord_user_id=discord_user_id, guild_id=guild_id,
                                      succeeded=False, now=now)
        if found is not None:
            audit.record(
                session,
                "claim.refused",
                f"Claim code refused ({outcome}) for Discord user {discord_username or discord_user_id}",
                installation_id=found.installation_id,
                membership_id=found.membership_id,
                discord_user_id=discord_user_id,
                guild_id=guild_id,
                reason=str(outcome),
            )
        else:
            log.info("claims.refused", discord_user_id=discord_user_id, guild_id=guild_id, reason=str(outcome))
        return RedeemResult(outcome, message or MESSAGES[outcome],
                            found.membership_id if found is not None else None)

    normalized = normalize_code(code)
    found = repository.get_code_by_hash(session, hash_code(normalized)) if normalized else None
    if found is None:
        return refuse(ClaimOutcome.UNKNOWN)
    membership = session.get(Membership, found.membership_id)
    rule = session.get(AccessRule, membership.rule_id) if membership is not None else None
    installation = session.get(Installation, found.installation_id)
    if membership is None or rule is None or installation is None:
        return refuse(ClaimOutcome.UNKNOWN)
    server = repository.servers_of_installation(session, found.installation_id, guild_id)
    if server is None or rule.guild_id != guild_id:
        return refuse(ClaimOutcome.OTHER_STORE, found)
    if found.used_at is not None:
        if found.used_by_discord_user_id == discord_user_id:
            return refuse(ClaimOutcome.USED, found, count=False, message=ALREADY_YOURS)
        return refuse(ClaimOutcome.USED, found)
    if found.expires_at <= now:
        return refuse(ClaimOutcome.EXPIRED, found)
    if installation.status != InstallationStatus.ACTIVE or membership.status not in LIVE_STATUSES:
        return refuse(ClaimOutcome.NOT_LIVE, found)

    assert found.id is not None
    # The first write of the transaction: of two concurrent redemptions exactly one gets here with True.
    if not repository.mark_used(session, found.id, discord_user_id=discord_user_id, now=now):
        session.expire(found)
        return refuse(ClaimOutcome.USED, found)
    repository.record_attempt(session, discord_user_id=discord_user_id, guild_id=guild_id, succeeded=True,
                              now=now)
    link_customer(
        session,
        membership.installation_id,
        customer_email=membership.customer_email,
        discord_user_id=discord_user_id,
        discord_username=discord_username,
        saleor_user_id=membership.saleor_user_id,
        via=via,
    )
    audit.record(
        session,
        "claim.redeemed",
        f"Claim code for order #{membership.order_number or membership.order_id} redeemed by Discord user "
        f"{discord_username or discord_user_id} ({via})",
        installation_id=membership.installation_id,
        membership_id=membership.id,
        discord_user_id=discord_user_id,
        guild_id=guild_id,
        via=str(via),
    )
    return RedeemResult(
        ClaimOutcome.LINKED, f"Linked! You'll get {_roles_phrase(rule, role_names)} in a moment.", membership.id
    )
