FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY realtime_server ./realtime_server
COPY actors ./actors
COPY protocol ./protocol
COPY storage ./storage
COPY bridge ./bridge
RUN pip install --no-cache-dir .

ENV HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data \
    DATABASE_URL=sqlite:////data/realtime.db
VOLUME ["/data"]
EXPOSE 8000
CMD ["realtime-server", "serve"]
