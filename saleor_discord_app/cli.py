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


def main() -> None:
    cli()
