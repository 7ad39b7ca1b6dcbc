# syntax=docker/dockerfile:1
# The City Platform control-plane image: `controlplane serve | worker | migrate | bootstrap`.
# Build from the repository root:  docker build -t ghcr.io/city-platform/controlplane:0.1.0 .
# The Helm chart in helm/city-platform runs it non-root (UID 10001) on a read-only root
# filesystem with /tmp and /data mounted writable. See docs/deployment.md.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- build: a wheel of this repository (catalog/ and templates/ are force-included) ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controlplane/ controlplane/
COPY cli/ cli/
COPY catalog/ catalog/
COPY templates/ templates/
# Every dependency ships manylinux wheels (psycopg[binary] included), so no compiler is
# needed; building all wheels here keeps pip's network access out of the final stage.
RUN pip wheel --wheel-dir /wheels .

# --- runtime: the wheels installed into a clean slim image, no build tools ---
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONTROLPLANE_HOST=0.0.0.0 \
    CONTROLPLANE_PORT=8080 \
    CONTROLPLANE_DATA_DIR=/data
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels city-platform \
    && groupadd --system --gid 10001 controlplane \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin controlplane \
    && mkdir -p /data \
    && chown 10001:10001 /data
# Numeric, so that Kubernetes can verify runAsNonRoot without resolving the name.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["controlplane"]
CMD ["serve"]
