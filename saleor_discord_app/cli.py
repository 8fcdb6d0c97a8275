"""Command line: run everything locally, migrate, and operator commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import typer
import uvicorn

from saleor_discord_app.config import get_settings

cli = typer.Typer(help="Saleor Discord Memberships", no_args_is_help=True)


@cli.callback()
def _setup() -> None:
    from saleor_discord_app.logging import configure_logging

    configure_logging(json_logs=get_settings().environment == "production")


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from saleor_discord_app.db import run_migrations

    run_migrations()
    typer.echo("database is up to date")


@cli.command()
def api(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run only the web app (uvicorn)."""
    uvicorn.run("saleor_discord_app.main:create_app", factory=True, host=host, port=port, proxy_headers=True)


@cli.command()
def run(host: str = "127.0.0.1", port: int = 8000, concurrency: int = 2) -> None:
    """Run api + worker + beat together (local use). Works with no external service by default."""
    from saleor_discord_app.db import run_migrations

    settings = get_settings()
    run_migrations()
    worker_pool = ["--pool", "threads"] if not settings.redis_url else []
    commands = [
        [sys.executable, "-m", "saleor_discord_app", "api", "--host", host, "--port", str(port)],
        [sys.executable, "-m", "celery", "-A", "saleor_discord_app.worker", "worker", "--beat",
         "--loglevel", "INFO", "--concurrency", str(concurrency), *worker_pool],
    ]
    processes = [subprocess.Popen(command, env=os.environ.copy()) for command in commands]
    typer.echo(f"api on http://{host}:{port} (manifest: {settings.public_url}/api/manifest); worker + beat started")

    def _stop(*_args: object) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, _stop)
    try:
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        _stop()
        for process in processes:
            process.wait(timeout=20)


@cli.command("render-manifest")
def render_manifest(
    public_url: str = typer.Option(None, help="Base URL to render for (default: the documented example)."),
    output: str = "manifest.json",
) -> None:
    """Write the manifest for a base URL (the committed manifest.json uses the documented example URL)."""
    import json

    from saleor_discord_app.config import Settings
    from saleor_discord_app.saleor.manifest import EXAMPLE_PUBLIC_URL, build_manifest

    manifest = build_manifest(Settings(public_url=public_url or EXAMPLE_PUBLIC_URL))
    with open(output, "w") as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")
    typer.echo(f"wrote {output}")


@cli.command("register-commands")
def register_commands(
    guild: str = typer.Option(None, "--guild", help="Register in one server only (instant) instead of globally."),
) -> None:
    """Register the /claim slash command with Discord (run again after changing it)."""
    from saleor_discord_app.claims.commands import register_commands as register
    from saleor_discord_app.discord.connect import bot_client

    application_id = get_settings().discord_client_id
    if not application_id:
        typer.echo("SDA_DISCORD_CLIENT_ID is not set", err=True)
        raise typer.Exit(1)
    from saleor_discord_app.discord.errors import DiscordError

    try:
        with bot_client() as client:
            registered = register(client, application_id, guild_id=guild or None)
    except DiscordError as exc:
        typer.echo(f"Discord refused: {getattr(exc, 'reason', None) or exc.message}", err=True)
        raise typer.Exit(1) from exc
    where = f"in server {guild}" if guild else "globally (may take up to an hour to show)"
    typer.echo(f"registered {', '.join('/' + c['name'] for c in registered)} {where}")


@cli.command()
def backfill(
    rule: int = typer.Option(..., help="Access rule id whose product's past paid orders to grant."),
    store: str = typer.Option(..., help="Saleor API URL of the store (https://…/graphql/)."),
    page_size: int = typer.Option(50, help="Orders per GraphQL page."),
    pause: float = typer.Option(0.5, help="Seconds to wait between pages (rate limit towards Saleor)."),
) -> None:
    """Create memberships for existing paid orders of a rule's product (resumable, with progress)."""
    from saleor_discord_app.backfill import service
    from saleor_discord_app.db import session_scope
    from saleor_discord_app.saleor import repository

    with session_scope() as session:
        installation = repository.get_active_by_api_url(session, store)
        if installation is None or installation.id is None:
            raise typer.BadParameter(f"no active store with API URL {store}")
        try:
            job = service.start(session, installation.id, rule)
        except service.BackfillError as exc:
            raise typer.BadParameter(str(exc)) from exc
        job_id = job.id
    assert job_id is not None
    result = service.run(
        job_id,
        page_size=page_size,
        pause_seconds=pause,
        on_progress=lambda j: typer.echo(
            f"page {j.pages}: {j.orders_seen} orders seen, {j.orders_matched} matched, "
            f"{j.memberships_created} memberships created"
        ),
    )
    typer.echo(f"backfill {result.status}")


@cli.command()
def doctor() -> None:
    """Check configuration, database, broker, Discord reachability and bot permissions per server."""
    from saleor_discord_app.doctor import run_checks

    checks = run_checks()
    for check in checks:
        typer.echo(f"[{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


@cli.command("resend-invitations")
def resend_invitations(
    store: str = typer.Option(None, "--store", help="Only this store (its Saleor API URL)."),
) -> None:
    """Queue every due invitation reminder now (what beat does every 5 minutes)."""
    from saleor_discord_app.db import session_scope
    from saleor_discord_app.invitations import repository as invitations_repository
    from saleor_discord_app.invitations.service import RESEND_BATCH, resend_due

    installation_id: int | None = None
    if store:
        with session_scope() as session:
            installation = invitations_repository.installation_by_api_url(session, store)
            if installation is None:
                typer.echo(f"no store with API URL {store}", err=True)
                raise typer.Exit(1)
            installation_id = installation.id
    total = 0
    while True:
        with session_scope() as session:
            scan = resend_due(session, installation_id=installation_id)
        total += len(scan.queued)
        if scan.examined < RESEND_BATCH:
            break
    typer.echo(f"queued {total} invitation(s)")


@cli.command()
def reconcile(
    store: str = typer.Option(None, "--store", help="Only this store (its Saleor API URL)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing in Discord or the database."),
) -> None:
    """Run the subscription check now, in this process, and print the plan or the result per Discord server."""
    from saleor_discord_app.db import session_scope
    from saleor_discord_app.reconcile import repository as reconcile_repository
    from saleor_discord_app.reconcile import service as reconcile_service

    with session_scope() as session:
        server_ids = reconcile_repository.servers_to_reconcile(session, store)
    if not server_ids:
        typer.echo(f"no Discord server to check{f' for {store}' if store else ''}")
        return
    failed = False
    for server_id in server_ids:
        with session_scope() as session:
            result = reconcile_service.reconcile_server(session, server_id, dry_run=dry_run)
        typer.echo(result.render())
        failed = failed or result.status == "problem"
    if failed:
        raise typer.Exit(1)


def main() -> None:
    cli()
