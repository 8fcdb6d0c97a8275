"""The subscription check (F14): make each Discord server's roles match the memberships, repairing only drift.

Per Discord server (guild) of an active store:

- Managed roles: every role id of the store's rules on the guild. Alumni roles (``AccessRule.alumni_role_id``)
  are *protected*: the check never removes them (they are given when access ends, so "nothing grants it" is
  their normal state) and never adds them; that holds even when a role is both a rule's role and another
  rule's alumni role. Roles the app does not manage are never touched.
- Desired state: for each linked Discord user, the roles granted by live memberships (``LIVE_STATUSES``) of
  the customers linked to that user (F11: a role stays while any of them grants it). Built once per guild as a
  compact ``dict[int, frozenset[str]]`` (user id → interned role set) from a streamed two-column query: memory
  grows with the number of *buyers* on the guild (~100 bytes each), never with the member count, and the
  dict is consumed (popped) as members are seen, so it only shrinks during the pass.
- Actual state: Discord's member list, one page of 1000 at a time (``iter_member_pages``); a page is
  processed and dropped before the next is fetched. If listing is refused for lack of the Server Members
  Intent (50001) and the store has few known customers on the guild (≤ ``PER_MEMBER_LIMIT``), the check falls
  back to one ``get_member`` per known customer (and says so in the server's health problems).
- Diff per member: add the desired roles that are missing; remove the removable managed roles nothing grants.
  Before any write the page's differing users are re-read from the database, so a membership that ended (or
  started) since the pass began is not undone. Discord calls = list pages + one per real difference.
- Desired users absent from the list: if they had the role and left, they chose to: their memberships say so
  (``LEFT_SERVER_REASON``) and nobody is pulled back in. If they never got it, with a usable OAuth token
  ``memberships.sync_membership`` is scheduled (it adds them with ``guilds.join``); otherwise the memberships
  are marked ``needs_attention`` with the same reasons as ``discord_sync``. Once they (re)join, the next pass
  adds the role.
- A role Discord refuses to give or take (hierarchy 50013, unknown role 10011, invalid role 50028) is skipped
  for the rest of the pass after the first refusal (no storm of failing calls), the affected memberships need
  attention, and the server's health says why. Guild-level refusals (bot removed, token rejected, missing
  intent) stop the pass and land in ``DiscordServer.health_problems``; transient ones raise ``RetryLater``.

Dry run: the same reads, no Discord writes and no database writes; the returned plan lists the actions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import structlog
from sqlmodel import Session

from saleor_discord_app import audit
from saleor_discord_app.discord.client import DiscordClient
from saleor_discord_app.discord.connect import bot_client
from saleor_discord_app.discord.errors import (
    INVALID_ROLE,
    MISSING_ACCESS,
    MISSING_PERMISSIONS,
    UNKNOWN_ROLE,
    NeedsAttention,
    NotAMember,
    RetryLater,
)
from saleor_discord_app.memberships.discord_sync import NOT_IN_SERVER_REASON, RECONNECT_REASON
from saleor_discord_app.models import (
    LIVE_STATUSES,
    AccessRule,
    CustomerLink,
    DiscordServer,
    Installation,
    InstallationStatus,
    LinkMethod,
    Membership,
    MembershipStatus,
)
from saleor_discord_app.reconcile import repository
from saleor_discord_app.sqltypes import utcnow

log = structlog.get_logger(__name__)

PAGE_SIZE = 1000
PER_MEMBER_LIMIT = 100
"""Fallback to per-member reads (no intent) only for this many known customers on a guild at most."""
MAX_ACTIONS_KEPT = 1000
"""Actions kept in a result for display; the counters always cover all of them."""
QUERY_CHUNK = 500
PROBLEM_PREFIX = "Subscription check: "
ROLE_REFUSALS = frozenset({MISSING_PERMISSIONS, UNKNOWN_ROLE, INVALID_ROLE})

INTENT_PROBLEM = (
    PROBLEM_PREFIX + "the bot cannot read this server's member list. In the Discord Developer Portal, open the "
    "application → Bot → Privileged Gateway Intents and turn on \"Server Members Intent\"; also check that the "
    "bot is still in the server."
)
INTENT_FALLBACK = (
    " Until then the app checks the customers it knows one by one; roles given by hand to other members are "
    "not seen."
)
ADD_REASON = "Store: subscription check (the role was missing)"
REMOVE_REASON = "Store: subscription check (no active purchase grants this role)"

Strategy = Literal["auto", "list", "members"]
_EMPTY: frozenset[str] = frozenset()


LEFT_SERVER_REASON = (
    "The customer left the Discord server after getting the role. The app does not pull people back in: the "
    "role comes back within 5 minutes when they rejoin (their email has an invite), or press Resync to add them "
    "back with their Discord authorization."
)


class ActionKind(StrEnum):
    ADD_ROLE = "add_role"
    REMOVE_ROLE = "remove_role"
    RESYNC = "resync"
    """A customer who should have access is not in the server; the app holds their Discord authorization, so a
    membership sync (which adds them back) is scheduled."""
    NOT_IN_SERVER = "not_in_server"
    """A customer who should have access is not in the server and the app cannot add them: needs attention."""
    SKIPPED = "skipped"
    """A difference the app cannot repair (Discord refused the role); the membership needs attention."""


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    user_id: str
    role_id: str | None = None
    membership_ids: tuple[int, ...] = ()
    note: str = ""
    done: bool = False

    def describe(self) -> str:
        memberships = f" (membership {', '.join(f'#{i}' for i in self.membership_ids)})" if self.membership_ids else ""
        text = {
            ActionKind.ADD_ROLE: f"give role {self.role_id} to Discord user {self.user_id}{memberships}",
            ActionKind.REMOVE_ROLE: f"take role {self.role_id} from Discord user {self.user_id}{memberships}: "
            "no active purchase grants it",
            ActionKind.RESYNC: f"Discord user {self.user_id} is not in the server: add them back with their "
            f"Discord authorization{memberships}",
            ActionKind.NOT_IN_SERVER: f"Discord user {self.user_id} is not in the server and cannot be added: "
            f"needs attention{memberships}",
            ActionKind.SKIPPED: f"cannot change role {self.role_id} of Discord user {self.user_id}{memberships}",
        }[self.kind]
        return f"{text}: {self.note}" if self.note else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "user_id": self.user_id,
            "role_id": self.role_id,
            "membership_ids": list(self.membership_ids),
            "done": self.done,
            "description": self.describe(),
        }


@dataclass
class ServerResult:
    """What one pass over one server found and did (or, in a dry run, would do)."""

    server_id: int
    guild_id: str = ""
    installation_id: int | None = None
    dry_run: bool = False
    status: str = "ok"
    """ok | problem | skipped (nothing managed) | inactive (store uninstalled) | missing (no such server)"""
    strategy: str = "list"
    members_seen: int = 0
    desired_users: int = 0
    list_calls: int = 0
    read_calls: int = 0
    write_calls: int = 0
    differences: int = 0
    """Role additions and removals needed (each is one Discord write when applied)."""
    activated: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    actions: list[Action] = field(default_factory=list)
    actions_omitted: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def discord_calls(self) -> int:
        return self.list_calls + self.read_calls + self.write_calls

    def add(self, action: Action) -> None:
        self.counts[str(action.kind)] += 1
        if len(self.actions) < MAX_ACTIONS_KEPT:
            self.actions.append(action)
        else:
            self.actions_omitted += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "server_id": self.server_id,
            "guild_id": self.guild_id,
            "dry_run": self.dry_run,
            "status": self.status,
            "strategy": self.strategy,
            "members_seen": self.members_seen,
            "desired_users": self.desired_users,
            "differences": self.differences,
            "activated": self.activated,
            "discord_calls": {
                "list": self.list_calls,
                "read": self.read_calls,
                "write": self.write_calls,
                "total": self.discord_calls,
            },
            "counts": dict(self.counts),
            "actions": [action.as_dict() for action in self.actions],
            "actions_omitted": self.actions_omitted,
            "problems": list(self.problems),
        }

    def render(self) -> str:
        """A plain-text report for the CLI."""
        mode = "plan (dry run, nothing changed)" if self.dry_run else "result"
        head = f"server #{self.server_id} guild {self.guild_id or '?'}: {self.status}, {mode}"
        lines = [head]
        if self.status in ("ok", "problem"):
            lines.append(
                f"  {self.members_seen} members read ({self.strategy}), {self.desired_users} customers with access, "
                f"{self.differences} role difference(s), {self.activated} membership(s) now active; Discord calls: "
                f"{self.list_calls} list + {self.read_calls} read + {self.write_calls} write"
            )
        lines += [f"  - {action.describe()}" for action in self.actions]
        if self.actions_omitted:
            lines.append(f"  ... and {self.actions_omitted} more")
        lines += [f"  ! {problem}" for problem in self.problems]
        return "\n".join(lines)


class _Stop(Exception):
    """A guild-level problem: the pass stops and the problem goes to the server's health."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class _Pass:
    """One reconciliation of one guild."""

    def __init__(
        self, session: Session, server: DiscordServer, rules: Sequence[AccessRule], client: DiscordClient,
        result: ServerResult, *, dry_run: bool,
    ) -> None:
        self.session = session
        self.installation_id = server.installation_id
        self.guild_id = server.guild_id
        self.client = client
        self.result = result
        self.dry_run = dry_run
        self._interned: dict[frozenset[str], frozenset[str]] = {}
        self.rule_roles: dict[int, frozenset[str]] = {
            rule.id: self._intern(frozenset(rule.role_ids)) for rule in rules if rule.id is not None
        }
        self.rule_ids = list(self.rule_roles)
        self.managed: frozenset[str] = frozenset().union(*self.rule_roles.values())
        protected = {rule.alumni_role_id for rule in rules if rule.alumni_role_id}
        self.removable: frozenset[str] = self.managed - protected
        self.broken: dict[str, str] = {}

    def _intern(self, roles: frozenset[str]) -> frozenset[str]:
        return self._interned.setdefault(roles, roles)

    # ------------------------------------------------------------------ desired state
    def desired(self) -> dict[int, frozenset[str]]:
        """User id → roles that live memberships grant (a few distinct role sets, shared between users)."""
        out: dict[int, frozenset[str]] = {}
        for user, rule_id, _membership_id in repository.iter_desired(self.session, self.installation_id, self.rule_ids):
            if not user.isdigit():
                continue
            roles = self.rule_roles.get(rule_id, _EMPTY)
            key = int(user)
            current = out.get(key)
            if current is None:
                out[key] = roles
            elif not roles <= current:
                out[key] = self._intern(current | roles)
        return out

    def fresh_grants(self, users: Iterable[str]) -> dict[str, dict[str, list[int]]]:
        """User → role → live membership ids granting it, read now (re-validates a page's differences)."""
        grants: dict[str, dict[str, list[int]]] = {}
        for user, rule_id, membership_id in repository.iter_desired(
            self.session, self.installation_id, self.rule_ids, list(users)
        ):
            for role in self.rule_roles.get(rule_id, _EMPTY):
                grants.setdefault(user, {}).setdefault(role, []).append(membership_id)
        return grants

    # ------------------------------------------------------------------ strategies
    def run(self, strategy: Strategy) -> None:
        desired = self.desired()
        self.result.desired_users = len(desired)
        if strategy == "members":
            self._run_members(desired)
        else:
            try:
                self._run_list(desired)
            except NeedsAttention as exc:  # 50001 on the list: no Server Members Intent (or no access)
                first_page = self.result.members_seen == 0
                if strategy != "auto" or not first_page or len(self._candidates(desired)) > PER_MEMBER_LIMIT:
                    raise _Stop(INTENT_PROBLEM) from exc
                self.result.problems.append(INTENT_PROBLEM + INTENT_FALLBACK)
                self._run_members(desired)
        self._absent([str(user) for user in desired])

    def _run_list(self, desired: dict[int, frozenset[str]]) -> None:
        self.result.strategy = "list"
        last_size: int | None = None
        try:
            for page in self.client.iter_member_pages(self.guild_id, PAGE_SIZE):
                self.result.list_calls += 1
                last_size = len(page)
                self._page(page, desired)
        except NeedsAttention as exc:
            self.result.list_calls += 1
            if exc.code == MISSING_ACCESS:
                raise
            raise _Stop(PROBLEM_PREFIX + exc.reason) from exc
        except RetryLater:
            self.result.list_calls += 1
            raise
        if last_size is None or last_size == PAGE_SIZE:
            self.result.list_calls += 1  # the request that came back empty (iter_member_pages yields no page)

    def _candidates(self, desired: dict[int, frozenset[str]]) -> list[str]:
        known = {str(user) for user in desired}
        known.update(repository.ended_users(self.session, self.installation_id, self.rule_ids))
        return sorted((user for user in known if user.isdigit()), key=int)

    def _run_members(self, desired: dict[int, frozenset[str]]) -> None:
        self.result.strategy = "members"
        candidates = self._candidates(desired)
        for start in range(0, len(candidates), PAGE_SIZE):
            page: list[dict[str, Any]] = []
            for user in candidates[start : start + PAGE_SIZE]:
                self.result.read_calls += 1
                try:
                    member = self.client.get_member(self.guild_id, user)
                except NeedsAttention as exc:
                    raise _Stop(PROBLEM_PREFIX + exc.reason) from exc
                if member is not None:
                    page.append(member)
            self._page(page, desired)

    # ------------------------------------------------------------------ one page of members
    def _page(self, members: list[dict[str, Any]], desired: dict[int, frozenset[str]]) -> None:
        differing: list[tuple[str, frozenset[str]]] = []
        confirmed: list[str] = []
        removable = self.removable
        for member in members:
            user = str((member.get("user") or {}).get("id") or "")
            if not user.isdigit():
                continue
            roles: list[str] = member.get("roles") or []
            want = desired.pop(int(user), None)
            if want is None:
                if removable and not removable.isdisjoint(roles):
                    differing.append((user, frozenset(roles)))
                continue
            have = frozenset(roles)
            if want <= have and removable.isdisjoint(have - want):
                confirmed.append(user)
            else:
                differing.append((user, have))
        self.result.members_seen += len(members)
        if differing:
            gone: list[str] = []
            confirmed += self._repair(differing, gone)
            self._absent(gone)
        if not self.dry_run:
            if confirmed:
                self._confirm(confirmed)
            self.session.commit()

    def _repair(self, differing: list[tuple[str, frozenset[str]]], gone: list[str]) -> list[str]:
        """Apply (or plan) each user's difference, re-read from the database; returns users now complete."""
        grants = self.fresh_grants(user for user, _ in differing)
        removals = {user: sorted((have & self.removable) - set(grants.get(user, {}))) for user, have in differing}
        ended = self._ended_attribution([user for user, roles in removals.items() if roles])
        complete: list[str] = []
        for user, have in differing:
            granted = grants.get(user, {})
            ok = True
            for role in sorted(set(granted) - have):
                outcome = self._add_role(user, role, granted[role])
                if outcome == "gone":
                    gone.append(user)
                    break
                ok = ok and outcome == "ok"
            else:
                for role in removals[user]:
                    self._remove_role(user, role, ended.get((user, role)))
                if granted and ok:
                    complete.append(user)
        return complete

    def _ended_attribution(self, users: list[str]) -> dict[tuple[str, str], int]:
        """(user, role) → the newest ended membership that had granted it (for the timeline), if any."""
        found: dict[tuple[str, str], int] = {}
        for membership in repository.ended_memberships(self.session, self.installation_id, self.rule_ids, users):
            if membership.id is None or membership.discord_user_id is None:
                continue
            for role in self.rule_roles.get(membership.rule_id, _EMPTY):
                found.setdefault((membership.discord_user_id, role), membership.id)
        return found

    # ------------------------------------------------------------------ writes
    def _add_role(self, user: str, role: str, membership_ids: list[int]) -> str:
        action = Action(ActionKind.ADD_ROLE, user, role, tuple(membership_ids))
        if role in self.broken:
            self._refused(action, self.broken[role])
            return "refused"
        self.result.differences += 1
        if self.dry_run:
            self.result.add(action)
            return "ok"
        try:
            self.result.write_calls += 1
            self.client.add_role(self.guild_id, user, role, reason=ADD_REASON)
        except NotAMember:
            return "gone"  # left between the list and now: handled like any absent customer
        except NeedsAttention as exc:
            if exc.code not in ROLE_REFUSALS:
                raise _Stop(PROBLEM_PREFIX + exc.reason) from exc
            self._role_broken(role, exc.reason)
            self._refused(action, exc.reason)
            return "refused"
        self.result.add(replace(action, done=True))
        audit.record(
            self.session, "reconcile.role_added", f"Subscription check gave role {role} to Discord user {user}.",
            installation_id=self.installation_id, membership_id=membership_ids[0] if membership_ids else None,
            guild_id=self.guild_id, role_id=role, discord_user_id=user,
        )
        return "ok"

    def _remove_role(self, user: str, role: str, membership_id: int | None) -> None:
        action = Action(ActionKind.REMOVE_ROLE, user, role, (membership_id,) if membership_id else ())
        if role in self.broken:
            self._refused(action, self.broken[role])
            return
        self.result.differences += 1
        if self.dry_run:
            self.result.add(action)
            return
        try:
            self.result.write_calls += 1
            self.client.remove_role(self.guild_id, user, role, reason=REMOVE_REASON)
        except NeedsAttention as exc:
            if exc.code not in ROLE_REFUSALS:
                raise _Stop(PROBLEM_PREFIX + exc.reason) from exc
            self._role_broken(role, exc.reason)
            self._refused(action, exc.reason)
            return
        self.result.add(replace(action, done=True))
        audit.record(
            self.session, "reconcile.role_removed",
            f"Subscription check took role {role} from Discord user {user}: no active purchase grants it.",
            installation_id=self.installation_id, membership_id=membership_id, guild_id=self.guild_id,
            role_id=role, discord_user_id=user,
        )

    def _role_broken(self, role: str, reason: str) -> None:
        self.broken[role] = reason
        self.result.problems.append(f"{PROBLEM_PREFIX}role {role} cannot be given or taken by the bot. {reason}")

    def _refused(self, action: Action, reason: str) -> None:
        self.result.add(replace(action, kind=ActionKind.SKIPPED, note=reason))
        if action.kind == ActionKind.ADD_ROLE and not self.dry_run:
            self._needs_attention(repository.memberships_by_id(self.session, action.membership_ids), reason)

    def _needs_attention(self, memberships: Iterable[Membership], reason: str) -> None:
        """As ``discord_sync``: live memberships become ``needs_attention`` with the reason (once, not every pass)."""
        now = utcnow()
        for membership in memberships:
            if membership.status not in LIVE_STATUSES:
                continue
            if membership.status == MembershipStatus.NEEDS_ATTENTION and membership.attention_reason == reason[:500]:
                continue
            membership.status = MembershipStatus.NEEDS_ATTENTION
            membership.attention_reason = reason[:500]
            membership.last_error = reason[:1000]
            membership.last_synced_at = now
            membership.updated_at = now
            self.session.add(membership)
            audit.record(self.session, "discord.needs_attention", reason, installation_id=self.installation_id,
                         membership_id=membership.id, source="reconcile")

    def _confirm(self, users: list[str]) -> None:
        changed = repository.confirm_active(self.session, self.installation_id, self.rule_ids, users, utcnow())
        self.result.activated += len(changed)
        for membership_id in changed:
            audit.record(self.session, "reconcile.activated",
                         "Subscription check confirmed the Discord role(s) are present; access is active.",
                         installation_id=self.installation_id, membership_id=membership_id, guild_id=self.guild_id)

    # ------------------------------------------------------------------ customers not in the server
    def _absent(self, users: list[str]) -> None:
        now = utcnow()
        for start in range(0, len(users), QUERY_CHUNK):
            chunk = users[start : start + QUERY_CHUNK]
            for link in repository.links_of_users(self.session, self.installation_id, chunk):
                memberships = repository.live_memberships_of_link(self.session, link, self.rule_ids)
                if memberships:
                    self._not_in_server(link, memberships, now)
        if not self.dry_run and users:
            self.session.commit()

    def _not_in_server(self, link: CustomerLink, memberships: Sequence[Membership], now: datetime) -> None:
        # Someone who got the role and then left chose to leave: the app never pulls them back in (that would
        # happen every 5 minutes); the role returns when they rejoin, or staff press Resync.
        left = [m for m in memberships if m.discord_user_id == link.discord_user_id]
        never_granted = [m for m in memberships if m.discord_user_id != link.discord_user_id]
        if left:
            self._cannot_add(link, left, LEFT_SERVER_REASON)
        if not never_granted:
            return
        ids = tuple(m.id for m in never_granted if m.id is not None)
        usable = bool(link.access_token and link.token_expires_at and link.token_expires_at > now) or bool(
            link.refresh_token
        )
        if usable:
            self.result.add(Action(ActionKind.RESYNC, link.discord_user_id, None, ids, done=not self.dry_run))
            if not self.dry_run:
                from saleor_discord_app.memberships.tasks import sync_membership
                from saleor_discord_app.worker import enqueue_after_commit

                for membership_id in ids:
                    enqueue_after_commit(self.session, sync_membership, membership_id)
            return
        reason = RECONNECT_REASON if link.linked_via == LinkMethod.OAUTH else NOT_IN_SERVER_REASON
        self._cannot_add(link, never_granted, reason)

    def _cannot_add(self, link: CustomerLink, memberships: Sequence[Membership], reason: str) -> None:
        ids = tuple(m.id for m in memberships if m.id is not None)
        self.result.add(Action(ActionKind.NOT_IN_SERVER, link.discord_user_id, None, ids, done=not self.dry_run))
        if not self.dry_run:
            self._needs_attention(memberships, reason)


def reconcile_server(
    session: Session,
    server_id: int,
    *,
    dry_run: bool = False,
    client: DiscordClient | None = None,
    strategy: Strategy = "auto",
) -> ServerResult:
    """One pass over one server. Idempotent. Raises ``RetryLater`` (work done so far is committed)."""
    result = ServerResult(server_id, dry_run=dry_run)
    server = repository.get_server(session, server_id)
    if server is None:
        result.status = "missing"
        return result
    result.guild_id, result.installation_id = server.guild_id, server.installation_id
    installation = session.get(Installation, server.installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        result.status = "inactive"
        return result
    rules = repository.guild_rules(session, server.installation_id, server.guild_id)
    if not any(rule.role_ids for rule in rules):
        result.status = "skipped"
        if not dry_run:
            _finish(session, server, result)
        return result
    own_client = client is None
    try:
        if client is None:
            client = bot_client()
        _Pass(session, server, rules, client, result, dry_run=dry_run).run(strategy)
    except (_Stop, NeedsAttention) as exc:
        result.status = "problem"
        result.problems.append(exc.problem if isinstance(exc, _Stop) else PROBLEM_PREFIX + exc.reason)
        log.warning("reconcile.problem", server_id=server_id, guild_id=server.guild_id, problem=result.problems[-1])
    except RetryLater:
        if not dry_run:
            session.commit()  # keep the timeline of the repairs already made
        raise
    finally:
        if own_client and client is not None:
            client.close()
    if not dry_run:
        _finish(session, server, result)
    log.info("reconcile.server", server_id=server_id, guild_id=server.guild_id, dry_run=dry_run,
             status=result.status, members=result.members_seen, differences=result.differences,
             calls=result.discord_calls, counts=dict(result.counts))
    return result


def _finish(session: Session, server: DiscordServer, result: ServerResult) -> None:
    """Store the pass's problems (replacing only the subscription check's own) and when it last completed."""
    kept = [problem for problem in server.health_problems if not problem.startswith(PROBLEM_PREFIX)]
    problems = kept + list(dict.fromkeys(result.problems))
    if problems != list(server.health_problems):
        audit.record(session, "reconcile.health", "; ".join(result.problems) or "The subscription check passed.",
                     installation_id=server.installation_id, server_id=server.id, guild_id=server.guild_id,
                     problems=result.problems)
        server.health_problems = problems
    if result.status != "problem":
        server.last_reconciled_at = utcnow()
    session.add(server)
    session.commit()


def reconcile_servers(
    session: Session, server_ids: Iterable[int], *, dry_run: bool = False, client: DiscordClient | None = None
) -> list[ServerResult]:
    return [reconcile_server(session, server_id, dry_run=dry_run, client=client) for server_id in server_ids]
