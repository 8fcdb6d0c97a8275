"""Standalone fake Discord: `python -m tests.fakes.discord --port 8765 --seed demo`."""

from __future__ import annotations

import argparse
import json

from .fake import FakeDiscord
from .seed import seed_demo
from .server import start_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.discord", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--seed",
        choices=["none", "demo", "demo-installed"],
        default="none",
        help="demo: bot joins via /oauth2/authorize; demo-installed: bot already in the guild",
    )
    parser.add_argument("--bot-token", default="test-bot-token")
    parser.add_argument("--client-id", default="1100000000000000001")
    parser.add_argument("--client-secret", default="test-secret")
    parser.add_argument("--global-limit", type=int, default=50, help="requests/s per token; 0 disables")
    parser.add_argument("--no-validate", action="store_true", help="do not check requests against OpenAPI")
    parser.add_argument("--log", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    fake = FakeDiscord(
        bot_token=args.bot_token,
        client_id=args.client_id,
        client_secret=args.client_secret,
        validate_requests=not args.no_validate,
        raise_on_violation=False,
    )
    fake.global_limit = args.global_limit or None
    seeded = seed_demo(fake, bot_installed=args.seed == "demo-installed") if args.seed != "none" else None
    server, thread = start_server(fake, args.host, args.port, log=args.log)
    root = f"http://{args.host}:{server.server_address[1]}"
    info = {
        "api_base_url": f"{root}/api/v10",
        "oauth2_authorize_url": f"{root}/oauth2/authorize",
        "oauth2_token_url": f"{root}/api/v10/oauth2/token",
        "bot_token": fake.bot_token,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "application_id": fake.application_id,
        "public_key": fake.public_key_hex,
        "seed": seeded.__dict__ if seeded else None,
    }
    print(json.dumps(info, indent=2), flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
