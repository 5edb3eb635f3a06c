# syntax=docker/dockerfile:1
# One image for every careloop service (`python -m services.<name>`), plus a Grafana with the
# dashboards baked in (target `grafana`). Build: docker build --target runtime -t careloop .
# Base images are pinned to exact tags; pin digests too in your registry mirror if it keeps them.

FROM python:3.11.14-slim-trixie AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app
RUN python -m venv /opt/venv
# The dependencies alone first (pinned in pyproject.toml), so a code change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-compile -r /tmp/requirements.txt
COPY shared shared
COPY services services
COPY deploy deploy
COPY data data
# routing's triage model, built once here from data/triage instead of by every replica at start.
RUN python -m services.routing.triage train

FROM build AS dashboards
RUN python -m deploy.grafana build /out --prometheus-url http://prometheus:9090 \
    --dashboards-path /etc/grafana/dashboards/careloop

FROM grafana/grafana:11.6.7 AS grafana
COPY --from=dashboards /out/provisioning /etc/grafana/provisioning
COPY --from=dashboards /out/dashboards /etc/grafana/dashboards/careloop

FROM python:3.11.14-slim-trixie AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CARELOOP_HTTP_HOST=0.0.0.0
# Pango and a CJK font: metrics' reports (PDF by WeasyPrint, Chinese in its pages and charts), as
# bin/careloop installs them on a developer's machine. Pinned to the upstream release trixie
# ships; the Debian revision is left open so a rebuild takes its security updates.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0=1.56.3-* libpangoft2-1.0-0=1.56.3-* fonts-wqy-microhei=0.2.0-beta-3.* \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin careloop
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
USER 10001
# Every service listens on 8080 in a container (compose and deploy/k8s set its HTTP port so).
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["python", "-m", "services.intake"]
