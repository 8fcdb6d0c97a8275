"""Benchmark: N role grants through DiscordClient against the in-process fake Discord.

The fake is configured with a known physical limit (per-route role-add buckets per guild and a global
per-token limit); the benchmark reports how close the client gets to it without being rate limited.

    .venv/bin/python bench/discord_grants.py [--n 2000] [--guilds 10] [--route-limit 10] [--route-window 1]
                                             [--global-limit 50] [--threads 20]
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from saleor_discord_app.discord import DiscordClient, RateLimiter
from tests.fakes.discord import FakeDiscord

ROLE_ROUTE = "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="number of role grants")
    parser.add_argument("--guilds", type=int, default=10)
    parser.add_argument("--route-limit", type=int, default=10, help="role grants per window per guild")
    parser.add_argument("--route-window", type=float, default=1.0, help="seconds")
    parser.add_argument("--global-limit", type=int, default=50, help="requests/s per bot token")
    parser.add_argument("--threads", type=int, default=20)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))

    fake = FakeDiscord(bot_token="bench-bot-token", record_requests=False, validate_requests=False)
    fake.set_rate_limit(ROLE_ROUTE, args.route_limit, args.route_window)
    fake.global_limit = args.global_limit
    guilds = [fake.add_guild(name=f"Guild {i}") for i in range(args.guilds)]
    roles = {g: fake.add_role(g, name="Member", position=1) for g in guilds}
    users_per_guild = -(-args.n // args.guilds)
    users = [fake.add_user(username=f"user{i}") for i in range(users_per_guild)]
    for g in guilds:
        for u in users:
            fake.add_member(g, u)
    grants = [(g, u, roles[g]) for u in users for g in guilds][: args.n]

    limiter = RateLimiter(global_limit=args.global_limit)
    errors: list[BaseException] = []

    def work(chunk: list[tuple[str, str, str]]) -> None:
        with DiscordClient(
            "bench-bot-token", base_url=fake.api_base_url, transport=fake.transport, limiter=limiter
        ) as client:
            for g, u, r in chunk:
                try:
                    client.add_role(g, u, r, reason="benchmark grant")
                except Exception as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=work, args=(grants[i :: args.threads],)) for i in range(args.threads)]
    started = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - started

    applied = sum(1 for g, u, r in grants if r in (fake.member_roles(g, u) or set()))
    physical = min(float(args.global_limit), args.guilds * args.route_limit / args.route_window)
    achieved = fake.stats.total / elapsed
    stats = limiter.stats
    print(f"grants:                  {len(grants)} ({applied} applied, {len(errors)} errors)")
    print(f"threads:                 {args.threads}")
    print(
        f"configured limits:       route {args.route_limit}/{args.route_window:g}s per guild x {args.guilds} guilds"
        f" = {args.guilds * args.route_limit / args.route_window:g} req/s; global {args.global_limit} req/s"
    )
    print(f"physical limit:          {physical:g} req/s")
    print(f"requests sent:           {fake.stats.total} in {elapsed:.2f}s")
    print(f"achieved:                {achieved:.1f} req/s")
    print(f"achieved / limit:        {achieved / physical:.3f}")
    print(f"429s received:           {stats.rate_limited_total} {stats.rate_limited or ''}")
    print(f"fake violations:         route {fake.stats.violations}, global {fake.stats.global_violations}")
    print(
        f"total wait time:         {stats.waited_seconds:.1f}s summed over threads "
        f"({stats.waited_seconds / args.threads:.1f}s per thread)"
    )
    if errors:
        print(f"first error: {errors[0]!r}")
        sys.exit(1)


if __name__ == "__main__":
    main()
