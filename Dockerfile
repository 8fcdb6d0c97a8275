# syntax=docker/dockerfile:1
# One image for every process: api (default command), worker and beat (see docker-compose.yml).
#   docker build -t saleor-discord-app .
FROM python:3.11-slim-bookworm

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /usr/local/bin/

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    SDA_DATA_DIR=/app/data

WORKDIR /app

# Dependencies first (cached layer), exactly as locked, without the dev group.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the app itself.
COPY README.md manifest.json alembic.ini ./
COPY saleor_discord_app ./saleor_discord_app
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

RUN useradd --system --uid 10001 --home-dir /app sda && mkdir -p /app/data && chown sda /app/data
USER sda

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["sda", "api", "--host", "0.0.0.0", "--port", "8000"]
