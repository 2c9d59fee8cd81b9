# certstream in a container: the wheel is built (with its compiled extensions) in a full
# Python image, then installed into a slim one that runs as an unprivileged user.
#
#   docker build -t certstream .
#   docker run -p 8080:8080 -v "$PWD/config.yaml:/app/config.yaml:ro" certstream
#
# The build steps are the ones tests/e2e/test_wheel.py runs on every `make test`.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.6.1
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE CHANGELOG.md config.example.yaml ./
COPY src ./src
# A wheel without its compiled modules would run several times slower: fail instead.
ENV CERTSTREAM_REQUIRE_EXTENSIONS=1
# The sdist first, then the wheel built from it (what a user of the sdist gets too).
RUN python -m build --outdir /dist .

FROM python:${PYTHON_VERSION}-slim-bookworm
# certstream-server-go's image reads /app/config/config.yaml; ours reads /app/config.yaml
# or that one (see deploy/docker-entrypoint.sh).  State (ct_log.state_file, relative to the
# working directory by default) goes to the /app/state volume.
ENV PATH=/opt/certstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /dist/*.whl /tmp/wheels/
RUN python -m venv /opt/certstream \
    && /opt/certstream/bin/pip install --no-cache-dir /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && groupadd --system --gid 10001 certstream \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app/state certstream \
    && mkdir -p /app/config /app/state \
    && chown certstream /app/state
COPY deploy/docker-entrypoint.sh /usr/local/bin/certstream-entrypoint
WORKDIR /app/state
USER 10001:10001
EXPOSE 8080
VOLUME ["/app/state"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('CERTSTREAM_PORT', '8080'), timeout=4)"]
# SIGTERM (docker stop) is a graceful stop: every WebSocket gets 1001, every SSE stream ends.
STOPSIGNAL SIGTERM
ENTRYPOINT ["certstream-entrypoint"]
CMD []
