# Tocsin API image: migrations then uvicorn, as a non-root user.
# PostgreSQL:  docker run -e TOCSIN_DATABASE_URL=postgresql+psycopg://user:pass@db:5432/tocsin -p 8000:8000 tocsin
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TOCSIN_MIGRATIONS_DIR=/app/alembic \
    TOCSIN_DATABASE_URL=sqlite:////data/tocsin.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
COPY integrations ./integrations
COPY alembic ./alembic
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app tocsin \
    && mkdir -p /data && chown tocsin /data

USER tocsin
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
# `tocsin serve` applies pending migrations, ensures an admin token, then starts uvicorn.
CMD ["tocsin", "serve", "--host", "0.0.0.0", "--port", "8000"]
