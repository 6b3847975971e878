# Claimledger: `docker build -t claimledger .`, then `docker compose up` (app + PostgreSQL).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Without PostgreSQL: an SQLite file on the /data volume (the service user cannot write
# anywhere else).
ENV CLAIMLEDGER_DATABASE_URL=sqlite:////data/claimledger.db

WORKDIR /srv/claimledger

# Dependencies and the `claimledger` command (psycopg[binary] needs no compiler); the
# wheel carries the migrations (app/_migrations), so `serve` migrates from the install.
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install . \
    && useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home \
        claimledger \
    && mkdir /data && chown claimledger:claimledger /data

USER claimledger
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# `start` applies pending migrations, mints an admin key if the database has none and prints
# it (`docker logs`), then serves (SIGTERM stops it gracefully). No demo data in the image's
# default; docker-compose.yml asks for it.
CMD ["claimledger", "start", "--host", "0.0.0.0", "--port", "8000", "--no-demo"]
