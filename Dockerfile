# syntax=docker/dockerfile:1
# The worker image: what a flow run executes in on a Kubernetes or ECS work pool (README, "Scaling out
# to Kubernetes or ECS"). Build it from the repository root with the commit as a label:
#
#   ./dev image        # = docker build --build-arg GIT_COMMIT="$(git rev-parse HEAD)" -t data-pipelines:<commit> .
#
# - Dependencies come from uv.lock exactly (`--locked` fails if pyproject.toml and uv.lock disagree),
#   without the dev group (`--no-dev`): tests, linters and the sandbox are not in the image.
# - Bytecode is compiled at build time (UV_COMPILE_BYTECODE, compileall for the project), so no run
#   pays for compiling dlt, Prefect or SQLAlchemy, and the non-root user needs no write access.
# - dlt's working directory (state, pending load packages) is DLT_DATA_DIR, a volume: mount an EFS
#   volume or a persistent volume claim there if unfinished packages should survive a lost container.
# - Runs as an unprivileged user. No secrets are copied in (.dockerignore): they come from AWS Secrets
#   Manager at run time (utils/vault_provider.py).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /opt/data-pipelines
# Dependencies first, in a layer of their own that is rebuilt only when uv.lock changes.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --locked --no-dev --no-install-project
COPY . /opt/data-pipelines
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev \
    && python -m compileall -q /opt/data-pipelines

FROM ${PYTHON_IMAGE}
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="data-pipelines" \
      org.opencontainers.image.description="dlt + Prefect worker image for the data-pipelines flows" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
RUN groupadd --system --gid 10001 pipelines \
    && useradd --system --uid 10001 --gid pipelines --create-home --home-dir /home/pipelines pipelines \
    && mkdir -p /var/lib/dlt \
    && chown pipelines:pipelines /var/lib/dlt
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/data-pipelines /opt/data-pipelines
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    DLT_DATA_DIR=/var/lib/dlt \
    # The image is what production workers run: unset, the environment would default to `local`
    # (DuckDB on the container's disk). A work pool's `env` can still say `ci`.
    DLT__ENVIRONMENT=production \
    GIT_COMMIT=${GIT_COMMIT}
VOLUME ["/var/lib/dlt"]
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# prefect.yaml's pull step for container pools: `set_working_directory: {directory: /opt/data-pipelines}`.
WORKDIR /opt/data-pipelines
# What a work pool's job runs (Prefect sets PREFECT__FLOW_RUN_ID and the API settings).
CMD ["prefect", "flow-run", "execute"]
