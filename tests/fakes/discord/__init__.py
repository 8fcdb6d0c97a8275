"""A faithful in-memory fake of Discord's REST API (v10) and OAuth2, for tests and local demos.

In-process:  `httpx.Client(base_url=fake.api_base_url, transport=fake.transport)`
Over HTTP:   `with fake.serve() as url: ...` (API under f"{url}/api/v10"), or
             `python -m tests.fakes.discord --port 8765 --seed demo`
"""

from .fake import FakeDiscord, FakeStats, InjectedConnectError, RecordedRequest
from .models import DEFAULT_BOT_PERMISSIONS, ManualClock, SystemClock
from .openapi import DiscordOpenAPIValidator, OpenAPIViolation
from .seed import DemoSeed, seed_demo

__all__ = [
    "DEFAULT_BOT_PERMISSIONS",
    "DemoSeed",
    "DiscordOpenAPIValidator",
    "FakeDiscord",
    "FakeStats",
    "InjectedConnectError",
    "ManualClock",
    "OpenAPIViolation",
    "RecordedRequest",
    "SystemClock",
    "seed_demo",
]
