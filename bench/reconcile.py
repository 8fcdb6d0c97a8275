"""Benchmark of the subscription check (F14): N memberships over S Discord servers with 1% drift.

For each size: a fresh PostgreSQL database (created from --database-url, dropped afterwards), bulk-loaded with
set-based inserts; the fake Discord in-process (request recording and OpenAPI validation off, so its own
bookkeeping does not grow or dominate); one customer buys one membership per server, so N memberships = N/S
customers, each a member of every server, plus 10% members who bought nothing. Drift (--drift of N): half
buyers missing their role, 30% ended memberships whose holder kept the role, 20% roles given by hand to
non-buyers; 5% of members also hold an unsold role that must never be touched.

Three passes per size: (1) timed, (2) the same drift re-applied to the fake, measured with tracemalloc, (3) a dry
run that must find nothing left to do. Rate limits: the fake's and the client's are relaxed (huge) so the
numbers show the app's own cost; the time the same pass needs under the fake's default ("realistic") limits is
computed from the call counts and printed next to it.

    .venv/bin/python bench/reconcile.py [--sizes 100000,10000] [--servers 10] [--drift 0.01]
                                        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SDA_DATA_DIR", tempfile.mkdtemp(prefix="sda-bench-"))
os.environ.setdefault("SDA_SECRET_KEY", "bench-secret-key")

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from saleor_discord_app.config import get_settings
from saleor_discord_app.db import get_engine, reset_engine, run_migrations, session_scope
from saleor_discord_app.discord import DiscordClient, RateLimiter
from saleor_discord_app.models import (
    AccessRule,
    CustomerLink,
    DiscordServer,
    Installation,
    Membership,
    MembershipStatus,
)
from saleor_discord_app.reconcile import service
from saleor_discord_app.sqltypes import utcnow
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.ratelimit import DEFAULT_ROUTE_LIMIT, DEFAULT_ROUTE_LIMITS

TOKEN = "bench-bot-token"
PAGE = service.PAGE_SIZE


@dataclass
class World:
    fake: FakeDiscord
    server_ids: list[int]
    guilds: list[str]
    role_of: dict[str, str]
    unsold_of: dict[str, str]
    members_per_guild: int
    drift: list[tuple[str, str, str, bool]] = field(default_factory=list)
    """(guild, user, role, should_have): the drifted state the pass must repair."""


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def build(n: int, servers: int, drift_share: float, seed: int = 7) -> World:
    rng = random.Random(seed)
    customers = n // servers
    extras = customers // 10
    fake = FakeDiscord(bot_token=TOKEN, record_requests=False, validate_requests=False)
    fake.set_rate_limit(".*", 10**9, 1.0)
    fake.global_limit = None
    guilds = [fake.add_guild(name=f"Guild {i}") for i in range(servers)]
    role_of = {g: fake.add_role(g, "Member", position=2) for g in guilds}
    unsold_of = {g: fake.add_role(g, "Helper", position=3) for g in guilds}
    users = [fake.add_user(username=f"c{i}") for i in range(customers)]
    strangers = [fake.add_user(username=f"s{i}") for i in range(extras)]

    # Drift: which (guild, customer) pairs are missing the role, which ended but kept it, hand-given roles.
    total = int(n * drift_share)
    missing_n, ended_n = total // 2, total * 3 // 10
    hand_n = total - missing_n - ended_n
    pairs = rng.sample(range(n), missing_n + ended_n)
    missing = {(p % servers, p // servers) for p in pairs[:missing_n]}
    ended = {(p % servers, p // servers) for p in pairs[missing_n:]}
    hand = {(p % servers, p // servers) for p in rng.sample(range(servers * extras), hand_n)}
    world = World(fake, [], guilds, role_of, unsold_of, customers + extras + 2)

    for gi, g in enumerate(guilds):
        role, unsold = role_of[g], unsold_of[g]
        for ci, user in enumerate(users):
            roles = [] if (gi, ci) in missing else [role]
            if rng.random() < 0.05:
                roles.append(unsold)
            fake.add_member(g, user, roles=roles)
            if (gi, ci) in missing:
                world.drift.append((g, user, role, True))
            elif (gi, ci) in ended:
                world.drift.append((g, user, role, False))
        for si, user in enumerate(strangers):
            roles = [role] if (gi, si) in hand else []
            if rng.random() < 0.05:
                roles.append(unsold)
            fake.add_member(g, user, roles=roles)
            if (gi, si) in hand:
                world.drift.append((g, user, role, False))

    now = utcnow()
    with session_scope() as session:
        installation = Installation(saleor_api_url="http://127.0.0.1:9/graphql/", app_id="QXBwOjE=", app_token="t")
        session.add(installation)
        session.flush()
        assert installation.id is not None
        rules: list[int] = []
        for g in guilds:
            server = DiscordServer(installation_id=installation.id, guild_id=g, name=g)
            rule = AccessRule(installation_id=installation.id, product_id=f"P{g}", guild_id=g, role_ids=[role_of[g]])
            session.add_all([server, rule])
            session.flush()
            assert server.id is not None
            assert rule.id is not None
            world.server_ids.append(server.id)
            rules.append(rule.id)
        inst = installation.id
    base = {"saleor_user_id": None, "access_token": None, "refresh_token": None, "token_expires_at": None,
            "discord_username": "", "linked_via": "claim_slash", "linked_at": now}
    links = [{**base, "installation_id": inst, "customer_email": f"c{i}@example.com", "discord_user_id": users[i]}
             for i in range(customers)]
    mbase = {"installation_id": inst, "saleor_user_id": None, "starts_at": now, "ends_at": None, "end_reason": None,
             "attention_reason": None, "last_error": None, "last_synced_at": None, "created_at": now,
             "updated_at": now}
    memberships = [
        {**mbase, "rule_id": rules[gi], "order_id": f"O{ci}-{gi}", "order_number": f"{ci}",
         "order_line_id": f"L{ci}-{gi}", "customer_email": f"c{ci}@example.com", "guild_id": guilds[gi],
         "discord_user_id": users[ci],
         "status": MembershipStatus.EXPIRED if (gi, ci) in ended else MembershipStatus.ACTIVE}
        for ci in range(customers)
        for gi in range(servers)
    ]
    engine = get_engine()
    with engine.begin() as connection:
        connection.execute(insert(CustomerLink.__table__), links)  # type: ignore[attr-defined]
        for start in range(0, len(memberships), 20000):
            connection.execute(insert(Membership.__table__), memberships[start : start + 20000])  # type: ignore[attr-defined]
        connection.execute(text("ANALYZE"))
    return world


def reapply_drift(world: World) -> None:
    for g, user, role, should_have in world.drift:
        member = world.fake.guilds[g].members[user]
        if should_have:
            member.roles.discard(role)
        else:
            member.roles.add(role)


def remaining_drift(world: World) -> int:
    return sum(
        (role in world.fake.guilds[g].members[user].roles) != should_have for g, user, role, should_have in world.drift
    )


def timed_transport(fake: FakeDiscord, spent: list[float]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        started = time.process_time()
        try:
            return fake.handle(request)
        finally:
            spent[0] += time.process_time() - started

    return httpx.MockTransport(handler)


@dataclass
class Run:
    wall: float
    cpu: float
    fake_cpu: float
    results: list[service.ServerResult]
    peak_bytes: int | None = None

    @property
    def calls(self) -> int:
        return sum(r.discord_calls for r in self.results)

    @property
    def list_calls(self) -> int:
        return sum(r.list_calls for r in self.results)

    @property
    def differences(self) -> int:
        return sum(r.differences for r in self.results)

    @property
    def writes(self) -> int:
        return sum(r.write_calls for r in self.results)


def run_pass(world: World, *, dry_run: bool = False, measure_memory: bool = False) -> Run:
    spent = [0.0]
    client = DiscordClient(TOKEN, base_url=world.fake.api_base_url, transport=timed_transport(world.fake, spent),
                           limiter=RateLimiter(global_limit=10**9))
    if measure_memory:
        tracemalloc.start()
        tracemalloc.reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    results: list[service.ServerResult] = []
    for server_id in world.server_ids:  # one task per server in production: one session per server here too
        with session_scope() as session:
            results.append(service.reconcile_server(session, server_id, dry_run=dry_run, client=client))
    run = Run(time.perf_counter() - wall, time.process_time() - cpu, spent[0], results)
    if measure_memory:
        run.peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    client.close()
    return run


def realistic_seconds(world: World, run: Run) -> tuple[float, float]:
    """Lower bounds under the fake's default limits: (servers one after another, servers in parallel)."""
    list_limit, list_window = DEFAULT_ROUTE_LIMITS.get("GET /guilds/{guild_id}/members", DEFAULT_ROUTE_LIMIT)
    put_limit, put_window = DEFAULT_ROUTE_LIMITS["PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}"]
    per_server = [
        r.list_calls / list_limit * list_window + r.write_calls / put_limit * put_window for r in run.results
    ]
    global_floor = run.calls / 50.0
    return max(sum(per_server), global_floor), max(max(per_server), global_floor)


def bench(size: int, servers: int, drift: float, base_url: str) -> dict[str, Any]:
    name = f"sda_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    os.environ["SDA_DATABASE_URL"] = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    get_settings.cache_clear()
    reset_engine()
    try:
        run_migrations()
        started = time.perf_counter()
        world = build(size, servers, drift)
        build_seconds = time.perf_counter() - started
        drifted = remaining_drift(world)
        rss_before = _rss_mb()
        first = run_pass(world)
        rss_after = _rss_mb()
        left = remaining_drift(world)
        reapply_drift(world)
        second = run_pass(world, measure_memory=True)
        check = run_pass(world, dry_run=True)
        return {"size": size, "servers": servers, "build": build_seconds, "members": world.members_per_guild,
                "drifted": drifted, "left": left, "first": first, "second": second, "check": check,
                "rss": (rss_before, rss_after), "realistic": realistic_seconds(world, first), "world": world}
    finally:
        reset_engine()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def report(out: dict[str, Any], emit: Callable[[str], None] = print) -> None:
    first: Run = out["first"]
    second: Run = out["second"]
    check: Run = out["check"]
    size, members = out["size"], out["members"]
    pages_min = out["servers"] * (members // PAGE + 1)
    statuses = {r.status for r in first.results}
    app_cpu = first.cpu - first.fake_cpu
    emit(f"== {size:,} memberships over {out['servers']} servers ({members:,} Discord members each), "
         f"{out['drifted']:,} drifted roles; built in {out['build']:.1f}s")
    emit(f"wall time:            {first.wall:.2f}s (statuses {sorted(statuses)})")
    emit(f"CPU (process):        {first.cpu:.2f}s = app {app_cpu:.2f}s + in-process fake Discord {first.fake_cpu:.2f}s")
    emit(f"CPU per membership:   {first.cpu / size * 1e6:.1f} us total, {app_cpu / size * 1e6:.1f} us app only")
    emit(f"Discord calls:        {first.calls:,} = {first.list_calls} list pages + {first.writes:,} writes; "
         f"minimum {pages_min + out['drifted']:,} = {pages_min} pages + {out['drifted']:,} differences")
    emit(f"repairs:              {first.differences:,} differences; drift left afterwards: {out['left']}")
    emit(f"peak memory (pass 2): tracemalloc {(second.peak_bytes or 0) / 2**20:.1f} MiB "
         f"(same drift again: {second.differences:,} differences, {second.wall:.2f}s with tracing on)")
    emit(f"RSS:                  {out['rss'][0]:.0f} MiB before pass 1 (fake Discord + fixtures), "
         f"{out['rss'][1]:.0f} MiB after")
    emit(f"dry run afterwards:   {check.differences} differences, {check.calls} calls (pages only), "
         f"{check.wall:.2f}s")
    sequential, parallel = out["realistic"]
    emit(f"under the fake's default limits (list 10/s, role writes 10/10s per server, 50/s global): "
         f">= {sequential:.0f}s one server after another, >= {parallel:.0f}s with one worker per server")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,10000")
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--drift", type=float, default=0.01)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    outs = []
    for size in (int(s) for s in args.sizes.split(",")):
        out = bench(size, args.servers, args.drift, args.database_url)
        report(out)
        outs.append(out)
        print()
    if len(outs) > 1:
        big, small = outs[0], outs[-1]
        ratio = big["size"] / small["size"]
        print(f"== growth {small['size']:,} -> {big['size']:,} memberships (x{ratio:g})")
        for label, pick in (
            ("wall time", lambda o: o["first"].wall),
            ("CPU (app only)", lambda o: o["first"].cpu - o["first"].fake_cpu),
            ("CPU per membership", lambda o: (o["first"].cpu - o["first"].fake_cpu) / o["size"]),
            ("Discord calls", lambda o: o["first"].calls),
            ("peak memory (tracemalloc)", lambda o: o["second"].peak_bytes),
        ):
            print(f"{label + ':':27} x{pick(big) / pick(small):.2f}")  # type: ignore[no-untyped-call]
    print(f"max RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
