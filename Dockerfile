# The Outbound image: one image for the worker, the API service and `outbound db upgrade`.
# Installs exactly the locked dependencies (uv.lock) without the dev group.
FROM python:3.12.12-slim-bookworm

COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /uvx /usr/local/bin/

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/outbound \
    PATH=/opt/outbound/bin:$PATH \
    PYTHONUNBUFFERED=1

WORKDIR /app
# Dependencies first (a layer that survives code changes), then the project itself.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev \
    && useradd --system --uid 10001 --home-dir /data outbound \
    && mkdir -p /data/outbox && chown -R outbound /data

USER outbound
WORKDIR /data
ENTRYPOINT ["outbound"]
CMD ["--help"]
