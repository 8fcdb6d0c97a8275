"""Invitations (F7, F15): the welcome email, its reminders, and the storefront's order metadata.

A membership that is paid (``pending``) while its customer has no Discord link gets an ``Invitation`` row and
a welcome email with the Connect-Discord link, a claim code and an invite to the rule's channel. Every email
is one numbered *send* of that row (1 = welcome, 2.. = reminders or staff resends):

- whoever wants a send (the membership hook, the resend scan, staff) enqueues ``send_invitation(membership_id,
  n)`` with ``n = sends + 1``; the same send may be enqueued twice (double click, scan racing a retry);
- the task locks the row and does nothing if send ``n`` already went out; otherwise it issues a fresh claim
  code, sends the email (Message-ID derived from (membership, n), so even a crash between SMTP and commit
  produces a recognisable duplicate, not a new email) and records ``sends = n`` in the same transaction.
- ``next_send_at`` is the durable schedule: a dispatch lease while a send is queued (a lost broker message is
  re-sent by the scan), then the next reminder, or None when nothing more is due.

Per-store policy in ``Installation.settings``: ``resend_after_hours`` (default 48) and ``resend_max`` (default 3
reminders after the welcome email).

Storefront link: after each send, and on every later status change of an invited order, the order gets
public metadata (keys in ``METADATA_KEYS``) written with the app token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from celery import Task
from sqlmodel import Session

from saleor_discord_app import audit
from saleor_discord_app.db import session_scope
from saleor_discord_app.discord.errors import DiscordError, NeedsAttention
from saleor_discord_app.invitations import email, repository
from saleor_discord_app.memberships.links import get_link
from saleor_discord_app.models import (
    LIVE_STATUSES,
    AccessRule,
    Installation,
    InstallationStatus,
    Invitation,
    Membership,
    MembershipStatus,
)
from saleor_discord_app.saleor.client import SaleorClient, SaleorUnauthorized
from saleor_discord_app.sqltypes import utcnow

log = structlog.get_logger(__name__)

DEFAULT_RESEND_AFTER_HOURS = 48.0
DEFAULT_RESEND_MAX = 3
DISPATCH_LEASE = timedelta(minutes=15)
"""A queued send not done after this long is queued again by the scan (same send number: no duplicate)."""
RETRY_FAILED_AFTER = timedelta(hours=1)
"""A send that kept failing (SMTP down) is tried again this much later by the scan."""
RESEND_BATCH = 200
INVITE_MAX_AGE_SECONDS = 7 * 24 * 3600
INVITE_MAX_USES = 3
WAITING_STATUSES = (MembershipStatus.PENDING, MembershipStatus.INVITED)
"""Statuses in which an unlinked customer gets automatic invitations and reminders."""

META_URL = "discord_access_url"
META_STATUS = "discord_access_status"
META_UPDATED_AT = "discord_access_updated_at"
METADATA_KEYS = (META_URL, META_STATUS, META_UPDATED_AT)


class InvitationRefused(Exception):
    """Staff asked for a send that cannot happen (message says why); ``status_code`` for the API."""

    def __init__(self, message: str, *, status_code: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


# ---------------------------------------------------------------------------------------------- policy


def _number(value: Any, default: float, *, minimum: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number >= minimum else default


def resend_after(installation: Installation) -> timedelta:
    hours = _number((installation.settings or {}).get("resend_after_hours"), DEFAULT_RESEND_AFTER_HOURS,
                    minimum=0.1)
    return timedelta(hours=hours)


def resend_max(installation: Installation) -> int:
    return int(_number((installation.settings or {}).get("resend_max"), DEFAULT_RESEND_MAX, minimum=0))


def _store_settings(installation: Installation) -> dict[str, Any]:
    return installation.settings if isinstance(installation.settings, dict) else {}


# ---------------------------------------------------------------------------------------------- scheduling


def _enqueue_once(session: Session, task: Task[Any, Any], *args: Any) -> None:
    """Dispatch after commit, once per (task, args) per transaction."""
    from saleor_discord_app.worker import enqueue_after_commit

    queued: set[tuple[Any, ...]] = session.info.setdefault("invitations.queued", set())
    key = (task.name, *args)
    if key in queued:
        return
    queued.add(key)
    enqueue_after_commit(session, task, *args)


def _store_active(session: Session, installation_id: int) -> bool:
    installation = session.get(Installation, installation_id)
    return installation is not None and installation.status == InstallationStatus.ACTIVE


def _queue_send(session: Session, invitation: Invitation, membership_id: int, *, forced: bool) -> int:
    from saleor_discord_app.invitations.tasks import send_invitation

    send_number = invitation.sends + 1
    invitation.next_send_at = utcnow() + DISPATCH_LEASE
    session.add(invitation)
    _enqueue_once(session, send_invitation, membership_id, send_number, forced)
    return send_number


def schedule_invitation(session: Session, membership: Membership) -> None:
    """The membership hook (every status change): invite a paid, unlinked customer; keep the order's
    storefront metadata current once it was invited; stop reminders when the membership left the waiting states.
    """
    if membership.id is None:
        return
    invitation = repository.get_invitation(session, membership.id, lock=True)
    if (
        membership.status == MembershipStatus.PENDING
        and get_link(session, membership.installation_id, membership.customer_email) is None
        and _store_active(session, membership.installation_id)
    ):
        if invitation is None:
            invitation = Invitation(membership_id=membership.id)
            session.add(invitation)
            session.flush()
            _queue_send(session, invitation, membership.id, forced=False)
        elif invitation.next_send_at is None:  # e.g. reinstated after a chargeback: invite again
            installation = session.get(Installation, membership.installation_id)
            if installation is not None and invitation.sends <= resend_max(installation):
                _queue_send(session, invitation, membership.id, forced=False)
        return
    if invitation is None:
        return
    if membership.status not in WAITING_STATUSES and invitation.next_send_at is not None:
        invitation.next_send_at = None
        session.add(invitation)
    if invitation.sends > 0:
        schedule_order_metadata(session, membership)


def schedule_order_metadata(session: Session, membership: Membership) -> None:
    """Refresh the order's storefront metadata after the transaction commits."""
    from saleor_discord_app.invitations.tasks import update_order_metadata

    if membership.id is not None:
        _enqueue_once(session, update_order_metadata, membership.id)


def force_send(session: Session, installation_id: int, membership_id: int, *, by: str) -> int:
    """Staff "Send invitation": queue a send now, whatever the resend policy says. Returns its number."""
    membership = session.get(Membership, membership_id)
    if membership is None or membership.installation_id != installation_id:
        raise InvitationRefused("No such membership in this store.", status_code=404)
    if membership.status not in LIVE_STATUSES:
        raise InvitationRefused(f"This membership has ended ({membership.status}); there is nothing to invite to.")
    invitation = repository.get_or_create_invitation(session, membership_id)
    send_number = _queue_send(session, invitation, membership_id, forced=True)
    audit.record(session, "invitation.requested", f"Invitation requested by {by}",
                 installation_id=installation_id, membership_id=membership_id, send_number=send_number)
    return send_number


@dataclass(frozen=True)
class ScanResult:
    queued: list[int]
    """Memberships whose next send was queued."""
    examined: int
    """Due rows looked at (queued or retired); fewer than the batch size means the scan is complete."""


def resend_due(
    session: Session, *, now: datetime | None = None, limit: int = RESEND_BATCH, installation_id: int | None = None
) -> ScanResult:
    """Beat (and ``sda resend-invitations``): queue the due sends of one batch; retire rows with nothing due."""
    now = now or utcnow()
    queued: list[int] = []
    rows = repository.due_invitations(session, now, limit=limit, installation_id=installation_id)
    for invitation, membership, installation in rows:
        assert membership.id is not None
        if (
            installation.status != InstallationStatus.ACTIVE
            or membership.status not in WAITING_STATUSES
            or get_link(session, membership.installation_id, membership.customer_email) is not None
            or invitation.sends > resend_max(installation)
        ):
            invitation.next_send_at = None
            session.add(invitation)
            continue
        _queue_send(session, invitation, membership.id, forced=False)
        queued.append(membership.id)
    return ScanResult(queued=queued, examined=len(rows))


# ---------------------------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class SendPlan:
    membership_id: int
    installation_id: int
    send_number: int
    forced: bool
    guild_id: str
    invite_channel_id: str | None
    order_label: str


def _skip_reason(session: Session, membership: Membership | None, invitation: Invitation | None,
                 send_number: int, forced: bool) -> str | None:
    if membership is None:
        return "missing"
    if not _store_active(session, membership.installation_id):
        return "store inactive"
    if invitation is not None and invitation.sends >= send_number:
        return "already sent"
    if membership.status not in LIVE_STATUSES:
        return "membership ended"
    if not forced:
        if membership.status not in WAITING_STATUSES:
            return "not waiting for an invitation"
        if get_link(session, membership.installation_id, membership.customer_email) is not None:
            return "customer already linked"
    if not email.valid_address(membership.customer_email):
        return "no valid email address"
    return None


def _stop(session: Session, invitation: Invitation | None) -> None:
    if invitation is not None and invitation.next_send_at is not None:
        invitation.next_send_at = None
        session.add(invitation)


def plan_send(session: Session, membership_id: int, send_number: int, forced: bool) -> SendPlan | str:
    """What a send needs from the database (read before any Discord or SMTP call), or why to skip it."""
    membership = session.get(Membership, membership_id)
    invitation = repository.get_invitation(session, membership_id)
    reason = _skip_reason(session, membership, invitation, send_number, forced)
    if reason is not None:
        if reason not in ("already sent", "missing"):
            _stop(session, invitation)
        return reason
    assert membership is not None
    rule = session.get(AccessRule, membership.rule_id)
    if rule is None:
        return "missing"
    server = repository.server_of_guild(session, membership.installation_id, rule.guild_id)
    channel = rule.channel_id or (server.verification_channel_id if server else None)
    return SendPlan(
        membership_id=membership_id,
        installation_id=membership.installation_id,
        send_number=send_number,
        forced=forced,
        guild_id=rule.guild_id,
        invite_channel_id=channel,
        order_label=f"order #{membership.order_number or membership.order_id}",
    )


@dataclass(frozen=True)
class InviteResult:
    code: str | None
    problem: str | None = None


def create_invite(plan: SendPlan) -> InviteResult:
    """A limited invite (7 days, a few uses) to the rule's channel; a failure is reported, never raised."""
    from saleor_discord_app.discord.connect import bot_client

    if plan.invite_channel_id is None:
        return InviteResult(None, "No channel is configured for this product, so no server invite was created.")
    try:
        with bot_client() as client:
            invite = client.create_invite(
                plan.invite_channel_id,
                max_age=INVITE_MAX_AGE_SECONDS,
                max_uses=INVITE_MAX_USES,
                unique=True,
                reason=f"Store: invitation for {plan.order_label}",
            )
    except NeedsAttention as exc:
        return InviteResult(None, exc.reason)
    except DiscordError as exc:  # RetryLater and the rest: send the email without an invite
        return InviteResult(None, f"Discord did not create an invite right now ({exc.message}).")
    code = invite.get("code")
    return InviteResult(str(code)) if isinstance(code, str) and code else InviteResult(
        None, "Discord returned no invite code.")


SmtpSender = Callable[[Any, email.SmtpConfig], None]


def deliver(session: Session, plan: SendPlan, invite: InviteResult,
            smtp_send: SmtpSender = email.send_message) -> str:
    """Lock the invitation, re-check, issue the claim code, send, record. Raises EmailError to retry."""
    from saleor_discord_app.claims.service import DEFAULT_VALIDITY, issue_code
    from saleor_discord_app.linking.service import customer_link_url, store_label

    invitation = repository.get_or_create_invitation(session, plan.membership_id)
    membership = session.get(Membership, plan.membership_id, with_for_update=True)
    reason = _skip_reason(session, membership, invitation, plan.send_number, plan.forced)
    if reason is not None:
        if reason != "already sent":
            _stop(session, invitation)
        return reason
    assert membership is not None
    assert membership.id is not None
    installation = session.get(Installation, membership.installation_id)
    rule = session.get(AccessRule, membership.rule_id)
    assert installation is not None
    assert rule is not None
    store_settings = _store_settings(installation)
    server = repository.server_of_guild(session, membership.installation_id, rule.guild_id)
    verification = server.verification_channel_id if server else None

    config = email.smtp_config(store_settings)  # before issuing a code: a missing config changes nothing
    code = issue_code(session, membership)
    context: dict[str, Any] = {
        "store": store_label(installation),
        "product": rule.name or "Discord access",
        "server_name": server.name if server and server.name else "",
        "order_number": membership.order_number or membership.order_id,
        "customer_email": membership.customer_email,
        "link_url": customer_link_url(membership.installation_id, membership.customer_email),
        "claim_code": code,
        "claim_valid_days": DEFAULT_VALIDITY.days,
        "verification_channel_url": (
            f"https://discord.com/channels/{rule.guild_id}/{verification}" if verification else None
        ),
        "invite_url": f"https://discord.gg/{invite.code}" if invite.code else None,
        "invite_valid_days": INVITE_MAX_AGE_SECONDS // 86400,
        "invite_note": None if invite.code else (
            "We could not include a server invitation this time: use the Connect Discord button above, "
            "which adds you to the server automatically."
        ),
        "reminder": plan.send_number > 1,
        "send_number": plan.send_number,
    }
    rendered = email.render_welcome(context, store_settings)
    msg_id = email.message_id(membership.installation_id, membership.id, plan.send_number)
    message = email.build_message(rendered=rendered, to=membership.customer_email,
                                  from_=email.sender(store_settings), msg_id=msg_id)
    smtp_send(message, config)

    now = utcnow()
    invitation.sends = plan.send_number
    invitation.last_sent_at = now
    invitation.invite_code = invite.code
    invitation.last_error = f"Sent without a server invite: {invite.problem}"[:1000] if invite.problem else None
    reminders_sent = plan.send_number - 1
    waiting = membership.status in WAITING_STATUSES
    invitation.next_send_at = (
        now + resend_after(installation) if waiting and reminders_sent < resend_max(installation) else None
    )
    session.add(invitation)
    if membership.status == MembershipStatus.PENDING:
        membership.status = MembershipStatus.INVITED
        membership.updated_at = now
        session.add(membership)
    if invite.problem and rule.channel_id is not None:
        audit.record(session, "invitation.invite_failed",
                     f"The email went out without a server invite: {invite.problem}",
                     installation_id=membership.installation_id, membership_id=membership.id)
    audit.record(
        session,
        "invitation.sent",
        ("Welcome email" if plan.send_number == 1 else f"Reminder email (send {plan.send_number})")
        + f" sent to {membership.customer_email}" + (" at staff request" if plan.forced else ""),
        installation_id=membership.installation_id,
        membership_id=membership.id,
        send_number=plan.send_number,
        message_id=msg_id,
        invite=bool(invite.code),
        forced=plan.forced,
    )
    schedule_order_metadata(session, membership)
    return f"sent #{plan.send_number}"


def send_invitation(membership_id: int, send_number: int, *, forced: bool = False,
                    smtp_send: SmtpSender = email.send_message) -> str:
    """The task body: plan (short transaction), create the Discord invite (no transaction), deliver."""
    with session_scope() as session:
        plan = plan_send(session, membership_id, send_number, forced)
    if isinstance(plan, str):
        log.info("invitations.skipped", membership_id=membership_id, send_number=send_number, reason=plan)
        return plan
    invite = create_invite(plan)
    with session_scope() as session:
        return deliver(session, plan, invite, smtp_send)


def record_failure(membership_id: int, send_number: int, error: str, *, final: bool, retryable: bool) -> None:
    """A send failed (its transaction rolled back): note why, and when to try again."""
    with session_scope() as session:
        invitation = repository.get_invitation(session, membership_id, lock=True)
        membership = session.get(Membership, membership_id)
        if invitation is None or membership is None or invitation.sends >= send_number:
            return
        invitation.last_error = f"Email not sent: {error}"[:1000]
        if not retryable:
            invitation.next_send_at = None
        elif final:
            invitation.next_send_at = utcnow() + RETRY_FAILED_AFTER
        else:
            invitation.next_send_at = utcnow() + DISPATCH_LEASE
        session.add(invitation)
        if final:
            audit.record(
                session,
                "invitation.failed",
                f"The invitation email could not be sent: {error}"
                + (" Will try again later." if retryable else " Fix the problem, then press Send invitation."),
                installation_id=membership.installation_id,
                membership_id=membership_id,
                send_number=send_number,
            )


# ---------------------------------------------------------------------------------------------- storefront


def storefront_status(memberships: list[Membership]) -> str:
    """One status for the order: what the customer should do or has, most urgent first."""
    statuses = {m.status for m in memberships}
    if statuses & {MembershipStatus.PENDING, MembershipStatus.INVITED}:
        return "invited"
    if MembershipStatus.NEEDS_ATTENTION in statuses:
        return "needs_attention"
    if MembershipStatus.ACTIVE in statuses:
        return "active"
    if MembershipStatus.EXPIRED in statuses:
        return "expired"
    return "revoked"


def order_metadata(session: Session, membership: Membership) -> list[dict[str, str]]:
    from saleor_discord_app.linking.service import customer_link_url

    memberships = list(repository.memberships_of_order(session, membership.installation_id, membership.order_id))
    return [
        {"key": META_URL, "value": customer_link_url(membership.installation_id, membership.customer_email)},
        {"key": META_STATUS, "value": storefront_status(memberships or [membership])},
        {"key": META_UPDATED_AT, "value": utcnow().isoformat()},
    ]


UPDATE_ORDER_METADATA = "mutations/update_order_metadata.graphql"
ClientFactory = Callable[[str, str], SaleorClient]


def update_order_metadata(membership_id: int, *, client_factory: ClientFactory = SaleorClient) -> str:
    """Write the order's public metadata. SaleorError propagates (the task retries); 401 uninstalls the store;
    errors in Saleor's answer (e.g. a missing MANAGE_ORDERS) are logged and not retried."""
    from saleor_discord_app.saleor.service import uninstall

    with session_scope() as session:
        membership = session.get(Membership, membership_id)
        if membership is None:
            return "missing"
        installation = session.get(Installation, membership.installation_id)
        if installation is None or installation.status != InstallationStatus.ACTIVE or not installation.app_token:
            return "store inactive"
        api_url, token, order_id = installation.saleor_api_url, installation.app_token, membership.order_id
        metadata = order_metadata(session, membership)
        installation_id = membership.installation_id
    try:
        data = client_factory(api_url, token).execute(UPDATE_ORDER_METADATA, {"id": order_id, "input": metadata})
    except SaleorUnauthorized:
        with session_scope() as session:
            installation = session.get(Installation, installation_id, with_for_update=True)
            if installation is not None:
                uninstall(session, installation, reason="Saleor answered 401 while updating order metadata.")
        return "store uninstalled"
    errors = (data.get("updateMetadata") or {}).get("errors") or []
    if errors:
        log.warning("invitations.order_metadata.rejected", membership_id=membership_id, order_id=order_id,
                    errors=errors)
        return "rejected"  # a permission or validation problem: retrying would not help
    status = next(item["value"] for item in metadata if item["key"] == META_STATUS)
    log.info("invitations.order_metadata.updated", membership_id=membership_id, order_id=order_id, status=status)
    return status
