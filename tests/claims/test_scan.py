"""``!claim CODE`` messages in the verification channel (F13), read by the 5-minute scan."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, select

from saleor_discord_app.claims import repository, service, tasks
from saleor_discord_app.memberships.tasks import sync_membership
from saleor_discord_app.models import (
    ClaimAttempt,
    ClaimCode,
    CustomerLink,
    DiscordServer,
    Installation,
    InstallationStatus,
    LinkMethod,
)
from saleor_discord_app.worker import TASK_MODULES, beat_schedule, celery_app
from tests.claims.conftest import Store, make_membership, make_store
from tests.fakes.discord import FakeDiscord


def issue(session: Session, store: Store, **kwargs: Any) -> tuple[str, int]:
    membership = make_membership(session, store, **kwargs)
    code = service.issue_code(session, membership)
    session.commit()
    assert membership.id is not None
    return code, membership.id


def scan(store: Store) -> dict[str, Any]:
    result: dict[str, Any] = tasks.scan_server.run(store.server_id)
    return result


def bot_replies(fake: FakeDiscord, store: Store) -> list[dict[str, Any]]:
    return [m for m in fake.channel_messages(store.channel_id) if m["author"]["id"] == fake.bot_user_id]


def reply_requests(fake: FakeDiscord) -> list[Any]:
    return fake.calls("/channels/{channel_id}/messages", method="POST")


def server_row(session: Session, store: Store) -> DiscordServer:
    session.expire_all()
    server = session.get(DiscordServer, store.server_id)
    assert server is not None
    return server


def test_claim_message_links_grants_and_replies(session: Session, fake: FakeDiscord, store: Store) -> None:
    user = fake.add_user(username="alice")
    fake.add_member(store.guild_id, user)
    fake.post_message(store.channel_id, user, "hi, just joined")
    code, membership_id = issue(session, store)
    typed = code.lower().replace("-", " ")
    message_id = fake.post_message(store.channel_id, user, f"!CLAIM  {typed}")

    report = scan(store)
    assert report["claims"] == 1
    assert report["linked"] == 1
    assert report["replies"] == 1

    (reply,) = bot_replies(fake, store)
    assert reply["content"] == "Linked! You'll get the VIP role in a moment."  # role names read from the server
    assert code not in reply["content"]
    assert typed not in reply["content"].lower()
    (request,) = reply_requests(fake)
    assert request.body["message_reference"]["message_id"] == message_id
    assert request.body["allowed_mentions"] == {"parse": []}

    session.expire_all()
    link = session.exec(select(CustomerLink)).one()
    assert (link.discord_user_id, link.linked_via) == (user, LinkMethod.CLAIM_MESSAGE)
    assert server_row(session, store).last_claim_message_id == message_id

    sync_membership.run(membership_id)
    assert fake.member_roles(store.guild_id, user) == {store.role_id}


def test_rescanning_processes_nothing_again(session: Session, fake: FakeDiscord, store: Store) -> None:
    user = fake.add_user()
    fake.post_message(store.channel_id, user, "!claim ZZZZ-ZZZZ-ZZZZ")
    assert scan(store)["replies"] == 1
    last = server_row(session, store).last_claim_message_id
    attempts = len(session.exec(select(ClaimAttempt)).all())

    again = scan(store)  # the bot's own reply is the only new message: read, ignored
    assert again["claims"] == 0
    assert again["replies"] == 0
    third = scan(store)
    assert third["read"] == 0
    assert third["replies"] == 0
    assert len(reply_requests(fake)) == 1
    session.expire_all()
    assert len(session.exec(select(ClaimAttempt)).all()) == attempts
    assert server_row(session, store).last_claim_message_id != last  # moved past the bot's reply


@pytest.mark.parametrize(("content", "expected"), [
    ("!claim ZZZZ-ZZZZ-ZZZZ", "isn't valid"),
    ("!claim", "Type your claim code after !claim"),
])
def test_refusals_are_answered_in_the_channel(session: Session, fake: FakeDiscord, store: Store, content: str,
                                              expected: str) -> None:
    fake.post_message(store.channel_id, fake.add_user(), content)
    scan(store)
    (reply,) = bot_replies(fake, store)
    assert expected in reply["content"]


def test_used_expired_and_other_store_codes_in_messages(session: Session, fake: FakeDiscord, store: Store) -> None:
    alice, bob = fake.add_user(username="alice"), fake.add_user(username="bob")
    code, _ = issue(session, store)
    other = make_store(session, fake, "Other")
    other_code, _ = issue(session, other, email="x@example.com")
    fake.post_message(store.channel_id, alice, f"!claim {code}")
    fake.post_message(store.channel_id, bob, f"!claim {code}")
    fake.post_message(store.channel_id, bob, f"!claim {other_code}")
    scan(store)
    replies = [r["content"] for r in bot_replies(fake, store)]
    assert len(replies) == 3
    assert replies[0].startswith("Linked!")
    assert "already been used" in replies[1]
    assert "different Discord server" in replies[2]


def test_other_messages_and_bots_are_ignored(session: Session, fake: FakeDiscord, store: Store) -> None:
    code, _ = issue(session, store)
    user = fake.add_user()
    someone = fake.add_user(username="someone")
    fake.post_message(store.channel_id, user, f"I think !claim {code} is how it works")  # not at the start
    fake.post_message(store.channel_id, user, f"<@{someone}> !claim {code}")  # addressed to someone else
    fake.post_message(store.channel_id, fake.bot_user_id, f"!claim {code}")  # the bot itself
    fake.post_message(store.channel_id, user, "!claimed it already")
    report = scan(store)
    assert report["read"] == 4
    assert report["claims"] == 0
    assert report["replies"] == 0
    session.expire_all()
    assert session.exec(select(ClaimCode)).one().used_at is None


def test_first_scan_starts_from_the_newest_100(session: Session, fake: FakeDiscord, store: Store) -> None:
    user = fake.add_user()
    fake.post_message(store.channel_id, user, "!claim ZZZZ-ZZZZ-ZZZZ")  # old history, not replayed
    for index in range(100):
        fake.post_message(store.channel_id, user, f"chatter {index}")
    report = scan(store)
    assert report["read"] == 100
    assert report["replies"] == 0
    assert server_row(session, store).last_claim_message_id == fake.channel_messages(store.channel_id)[-1]["id"]


def test_later_scans_page_through_everything_oldest_first(session: Session, fake: FakeDiscord,
                                                          store: Store) -> None:
    user = fake.add_user()
    fake.post_message(store.channel_id, user, "hello")
    scan(store)
    first, _ = issue(session, store, order="1")
    second, _ = issue(session, store, email="bo@example.com", order="2")
    for index in range(250):
        if index == 30:
            fake.post_message(store.channel_id, user, f"!claim {first}")
        elif index == 220:
            fake.post_message(store.channel_id, user, f"!claim {second}")
        else:
            fake.post_message(store.channel_id, user, f"chatter {index}")
    report = scan(store)
    assert report["linked"] == 2
    assert report["read"] == 251  # the 250 plus the bot's first reply, posted while the scan was paging
    replies = bot_replies(fake, store)
    assert [r["content"][:7] for r in replies] == ["Linked!", "Linked!"]
    requests = reply_requests(fake)
    ordered = [m["id"] for m in fake.channel_messages(store.channel_id)]
    assert ordered.index(requests[0].body["message_reference"]["message_id"]) < \
        ordered.index(requests[1].body["message_reference"]["message_id"])
    # The message-list calls all used `after`, from the stored id onwards.
    lists = fake.calls("/channels/{channel_id}/messages", method="GET")
    assert all("after" in call.query for call in lists[1:])


def test_without_message_content_intent_nothing_matches_and_a_hint_is_recorded(
    session: Session, fake: FakeDiscord, store: Store
) -> None:
    fake.message_content_intent = False
    user = fake.add_user()
    fake.add_member(store.guild_id, user)
    code, _ = issue(session, store)
    fake.post_message(store.channel_id, user, f"!claim {code}")
    report = scan(store)
    assert report["hidden"] == 1
    assert report["claims"] == 0
    assert report["replies"] == 0
    assert tasks.CONTENT_HINT in server_row(session, store).health_problems
    assert session.exec(select(ClaimCode)).one().used_at is None

    # "@Bot !claim CODE" is readable without the intent.
    fake.post_message(store.channel_id, user, f"<@{fake.bot_user_id}> !claim {code}")
    report = scan(store)
    assert report["linked"] == 1
    assert tasks.CONTENT_HINT in server_row(session, store).health_problems  # still true for plain messages

    fake.message_content_intent = True
    fake.post_message(store.channel_id, user, "thanks!")
    scan(store)
    assert tasks.CONTENT_HINT not in server_row(session, store).health_problems


def test_unreadable_channel_records_a_hint_and_keeps_others(session: Session, fake: FakeDiscord,
                                                            store: Store) -> None:
    server = server_row(session, store)
    server.health_problems = ["someone else's problem"]
    server.verification_channel_id = "123456789012345678"  # deleted channel
    session.add(server)
    session.commit()
    report = scan(store)
    assert report["stopped"]
    problems = server_row(session, store).health_problems
    assert problems[0] == "someone else's problem"
    assert any(p.startswith(tasks.CANNOT_READ_START) for p in problems)


def test_a_scan_that_lost_the_race_stops(session: Session, fake: FakeDiscord, store: Store) -> None:
    assert repository.advance_last_message(session, store.server_id, expected=None, new="5")
    assert not repository.advance_last_message(session, store.server_id, expected=None, new="6")
    assert not repository.advance_last_message(session, store.server_id, expected="4", new="6")
    assert repository.advance_last_message(session, store.server_id, expected="5", new="6")


def test_scan_messages_fans_out_to_servers_with_a_channel(session: Session, fake: FakeDiscord, store: Store,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    no_channel = make_store(session, fake, "NoChannel")
    gone = make_store(session, fake, "Gone")
    for server_id in [no_channel.server_id]:
        server = session.get(DiscordServer, server_id)
        assert server is not None
        server.verification_channel_id = None
        session.add(server)
    installation = session.get(Installation, gone.installation_id)
    assert installation is not None
    installation.status = InstallationStatus.UNINSTALLED
    session.add(installation)
    session.commit()
    sent: list[Any] = []
    monkeypatch.setattr(tasks.scan_server, "apply_async", lambda **kwargs: sent.append(kwargs))
    assert tasks.scan_messages.run() == 1
    assert sent == [{"args": (store.server_id,), "expires": 300, "retry": False}]


def test_scan_is_scheduled_every_five_minutes() -> None:
    from saleor_discord_app.config import get_settings

    entry = beat_schedule(get_settings())["scan-claim-messages"]
    assert entry["task"] == "claims.scan_messages"
    assert entry["schedule"] == 300
    assert "saleor_discord_app.claims.tasks" in TASK_MODULES
    assert {"claims.scan_messages", "claims.scan_server"} <= set(celery_app.tasks)
