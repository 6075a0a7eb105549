FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY livefeed ./livefeed
COPY templates ./templates
COPY static ./static
RUN pip install --no-cache-dir .
ENV LIVEFEED_HOST=0.0.0.0 LIVEFEED_PORT=8000 LIVEFEED_DATA_DIR=/data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
CMD ["livefeed", "serve"]
