"""Benchmark: signed ORDER_FULLY_PAID deliveries against the real app, next to a bare FastAPI endpoint.

Both servers run as uvicorn subprocesses with the same settings. The app runs on PostgreSQL (a fresh
database created for the run and dropped after) with the Redis broker, and a fake Saleor in this process
serves the JWKS and ``{ app { id } }``. The store is installed through the real ``/api/saleor/register``.
No Celery worker runs: the figure is the request path only (verify the JWS, record the event, publish
the task to Redis after commit). Every payload is distinct (own order id); a warm-up precedes each
measurement.

    .venv/bin/python bench/webhook_ingest.py [--requests 3000] [--concurrency 32] [--warmup 300]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/14] [--workers 1] [--client raw|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WEBHOOK_PATH = "/api/saleor/webhooks/order-fully-paid"


def bare_app() -> Any:
    """The baseline: a FastAPI endpoint at the same path that reads the body and answers 200."""
    app = FastAPI(redirect_slashes=False)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(WEBHOOK_PATH)
    async def webhook(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True})

    return app


# ----------------------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uvicorn_command(target: str, port: int, workers: int) -> list[str]:
    """Identical server settings for both servers."""
    return [
        sys.executable, "-m", "uvicorn", target, "--factory",
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--log-level", "warning", "--no-access-log",
        "--loop", "uvloop", "--http", "httptools",
    ]


@contextmanager
def server(name: str, target: str, workers: int, env: dict[str, str], log_dir: Path) -> Iterator[str]:
    import httpx

    port = free_port()
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            uvicorn_command(target, port, workers), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ----------------------------------------------------------------------------------------------- payloads


def order_fully_paid(index: int, run_id: str) -> bytes:
    order_id = base64.b64encode(f"Order:{uuid.uuid4()}".encode()).decode()
    payload = {
        "__typename": "OrderFullyPaid",
        "issuedAt": "2026-08-21T12:00:00.000000+00:00",
        "version": "3.23.28",
        "order": {
            "id": order_id,
            "number": str(100000 + index),
            "status": "UNFULFILLED",
            "chargeStatus": "FULL",
            "userEmail": f"bench-{run_id}-{index}@example.com",
            "user": {"id": base64.b64encode(f"User:{index}".encode()).decode(), "email": f"bench-{index}@example.com"},
            "channel": {"slug": "default-channel"},
            "total": {"gross": {"amount": 25.0, "currency": "USD"}},
            "lines": [
                {
                    "id": base64.b64encode(f"OrderLine:{uuid.uuid4()}".encode()).decode(),
                    "quantity": 1,
                    "productVariantId": "UHJvZHVjdFZhcmlhbnQ6MQ==",
                    "variant": {"id": "UHJvZHVjdFZhcmlhbnQ6MQ==", "product": {"id": "UHJvZHVjdDox"}},
                }
            ],
        },
    }
    return json.dumps(payload).encode()


def raw_request(host: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {WEBHOOK_PATH} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    head += [f"{key}: {value}" for key, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# ----------------------------------------------------------------------------------------------- load


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float]
    errors: list[str]
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _raw_worker(base: str, queue: asyncio.Queue[bytes], latencies: list[float], errors: list[str]) -> None:
    """One keep-alive HTTP/1.1 connection (a minimal client: the load generator must not be the limit)."""
    parts = urlsplit(base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        while True:
            try:
                request = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            try:
                writer.write(request)
                status_line = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError) as exc:
                errors.append(f"connection lost: {exc!r}")  # this connection stops; the others drain the queue
                return
            latencies.append(time.perf_counter() - started)
            if not status_line.startswith(b"HTTP/1.1 200") or b'"duplicate":true' in body:
                errors.append(f"{status_line.decode().strip()} {body[:200]!r}")
    finally:
        writer.close()


async def _httpx_worker(
    client: Any, base: str, queue: asyncio.Queue[tuple[bytes, dict[str, str]]],
    latencies: list[float], errors: list[str],
) -> None:
    while True:
        try:
            body, headers = queue.get_nowait()
        except asyncio.QueueEmpty:
            return
        started = time.perf_counter()
        response = await client.post(f"{base}{WEBHOOK_PATH}", content=body, headers=headers)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200 or b'"duplicate":true' in response.content:
            errors.append(f"{response.status_code} {response.content[:200]!r}")


async def _load(base: str, deliveries: list[tuple[bytes, dict[str, str]]], concurrency: int, client: str) -> Result:
    latencies: list[float] = []
    errors: list[str] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if client == "raw":
        host = urlsplit(base).netloc
        raw_queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body, headers in deliveries:
            raw_queue.put_nowait(raw_request(host, body, headers))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(_raw_worker(base, raw_queue, latencies, errors) for _ in range(concurrency)))
    else:
        import httpx

        queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
        for delivery in deliveries:
            queue.put_nowait(delivery)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60) as http:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(_httpx_worker(http, base, queue, latencies, errors) for _ in range(concurrency)))
    seconds = time.perf_counter() - wall0
    return Result(len(deliveries), seconds, latencies, errors, (time.process_time() - cpu0) / seconds)


def measure(
    base: str, warmup: list[tuple[bytes, dict[str, str]]], measured: list[tuple[bytes, dict[str, str]]],
    concurrency: int, client: str,
) -> Result:
    asyncio.run(_load(base, warmup, concurrency, client))
    return asyncio.run(_load(base, measured, concurrency, client))


# ----------------------------------------------------------------------------------------------- services


@contextmanager
def bench_database(base_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"sda_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def count_events(database_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM webhookevent")).scalar_one())
    finally:
        engine.dispose()


def row(label: str, result: Result) -> str:
    return (
        f"{label:<34} {result.rate:>10.0f} {result.pct(0.50):>8.2f} {result.pct(0.99):>8.2f} "
        f"{statistics.fmean(result.latencies) * 1000:>8.2f} {len(result.errors):>7} {result.client_cpu:>9.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="measured deliveries per server")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--warmup", type=int, default=300, help="deliveries sent before measuring")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL server; a fresh database is created next to it and dropped after")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14",
                        help="Celery broker; the bench deletes its queue key from this db afterwards")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (both servers)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="raw: minimal asyncio HTTP/1.1 keep-alive client; httpx: httpx.AsyncClient")
    args = parser.parse_args()

    import httpx
    import redis

    from tests.fakes.saleor import FakeSaleor

    run_id = uuid.uuid4().hex[:8]
    total = args.warmup + args.requests
    log_dir = Path(tempfile.mkdtemp(prefix="sda-bench-"))
    redis_client = redis.Redis.from_url(args.redis_url)
    redis_client.ping()
    queue_before = int(redis_client.llen("celery"))

    succeeded = False
    try:
        with FakeSaleor().serve() as fake, bench_database(args.database_url) as database_url:
            print(f"signing {2 * total} distinct ORDER_FULLY_PAID payloads ...", file=sys.stderr)
            app_deliveries = []
            for index in range(total):
                body = order_fully_paid(index, run_id)
                app_deliveries.append((body, fake.webhook_headers("ORDER_FULLY_PAID", body)))
            bare_deliveries = []
            for index in range(total):
                body = order_fully_paid(total + index, run_id)
                bare_deliveries.append((body, fake.webhook_headers("ORDER_FULLY_PAID", body)))

            env = {key: value for key, value in os.environ.items() if not key.startswith("SDA_")}
            env.update(
                SDA_ENVIRONMENT="production",
                SDA_DATABASE_URL=database_url,
                SDA_REDIS_URL=args.redis_url,
                SDA_DATA_DIR=str(log_dir / "data"),
                SDA_PUBLIC_URL="http://127.0.0.1:8000",
                SDA_SECRET_KEY=f"bench-secret-{run_id}",
                SDA_ALLOWED_SALEOR_URL_PATTERN=r"http://127\.0\.0\.1:\d+/graphql/",
            )

            print("bare FastAPI endpoint ...", file=sys.stderr)
            with server("bare", "bench.webhook_ingest:bare_app", args.workers, env, log_dir) as base:
                bare = measure(base, bare_deliveries[: args.warmup], bare_deliveries[args.warmup:],
                               args.concurrency, args.client)

            print("the app (PostgreSQL + Redis) ...", file=sys.stderr)
            # Migrate first, as a deployment does: several uvicorn workers migrating a fresh database at once race.
            subprocess.run([sys.executable, "-m", "saleor_discord_app", "migrate"], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL)
            with server("app", "saleor_discord_app.main:create_app", args.workers, env, log_dir) as base:
                response = httpx.post(
                    f"{base}/api/saleor/register",
                    json={"auth_token": fake.app_token},
                    headers={"Saleor-Api-Url": fake.api_url, "Saleor-Schema-Version": "3.23"},
                    timeout=30,
                )
                if response.status_code != 200:
                    raise SystemExit(f"install failed: {response.status_code} {response.text}")
                app = measure(base, app_deliveries[: args.warmup], app_deliveries[args.warmup:],
                              args.concurrency, args.client)
            recorded = count_events(database_url)
        queued = int(redis_client.llen("celery")) - queue_before
        succeeded = True
    finally:
        redis_client.delete("celery")  # the tasks no worker will run
        if succeeded:
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            print(f"server logs kept in {log_dir}", file=sys.stderr)

    import fastapi
    import sqlalchemy
    import uvicorn

    pg_version = ""
    from sqlalchemy import create_engine, text

    engine = create_engine(args.database_url)
    with engine.connect() as connection:
        pg_version = str(connection.execute(text("SHOW server_version")).scalar_one())
    engine.dispose()
    redis_version = redis_client.info("server").get("redis_version", "?")

    print()
    print(f"webhook ingest: {args.requests} measured signed ORDER_FULLY_PAID deliveries per server "
          f"(+{args.warmup} warm-up), {args.concurrency} concurrent keep-alive connections, client={args.client}")
    print(f"servers: uvicorn {uvicorn.__version__} --workers {args.workers} --loop uvloop --http httptools "
          f"--log-level warning --no-access-log; FastAPI {fastapi.__version__}, SQLAlchemy {sqlalchemy.__version__}, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs shared by client and servers")
    print(f"app: PostgreSQL {pg_version} (fresh database, dropped after), Redis {redis_version} broker "
          f"({args.redis_url}), SDA_ENVIRONMENT=production")
    print("no Celery worker runs: the app figures are the request path only "
          "(verify RS256 JWS + record WebhookEvent + publish the task to Redis after commit)")
    print()
    print(f"{'':<34} {'webhooks/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'errors':>7} {'client CPU':>9}")
    print(row("bare FastAPI endpoint (200)", bare))
    print(row("app: verify + record + publish", app))
    print(f"{'ratio app / bare':<34} {app.rate / bare.rate:>9.2f}x {app.pct(0.5) / bare.pct(0.5):>7.1f}x "
          f"{app.pct(0.99) / bare.pct(0.99):>7.1f}x")
    print()
    print(f"checked: {recorded} webhook events recorded (expected {total}), {queued} tasks published to Redis "
          f"queue 'celery' (expected {total}); the queue was deleted afterwards")
    if bare.client_cpu > 0.9:
        print("note: the load generator used >90% of a CPU on the bare endpoint: its figure is a lower bound")
    for label, result in (("bare", bare), ("app", app)):
        if result.errors:
            print(f"{label} errors (first 3): {result.errors[:3]}")
    if app.errors or bare.errors or recorded != total or queued != total:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
