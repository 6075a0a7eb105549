FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
# livefeed runs as its own unprivileged user; /data (the embedded Redis, if used) is its own.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin livefeed \
    && mkdir /data && chown livefeed:livefeed /data
WORKDIR /app
# Every dependency (and the build backend) pinned by hash; livefeed itself adds nothing more.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY livefeed ./livefeed
COPY templates ./templates
COPY static ./static
RUN pip install --no-cache-dir --no-deps --no-build-isolation .
ENV LIVEFEED_HOST=0.0.0.0 LIVEFEED_PORT=8000 LIVEFEED_DATA_DIR=/data
VOLUME /data
USER livefeed
EXPOSE 8000 9100
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
CMD ["livefeed", "serve"]
