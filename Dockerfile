# syntax=docker/dockerfile:1
# Two stages: "build" installs into a virtualenv, the runtime image copies only
# that virtualenv (no compilers, no pip cache, no source tree) and runs as a
# non-root user.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /venv

# Dependencies first, in their own layer: exactly the versions of
# requirements.lock (runtime ones only; the lock also pins test and lint tools).
# A code change does not reinstall them; a lock or dependency change does.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > runtime.txt \
 && /venv/bin/pip install -c requirements.lock -r runtime.txt

# Then the code, without dependency resolution (all of it is installed above).
COPY README.md ./
COPY realtime_server ./realtime_server
COPY actors ./actors
COPY protocol ./protocol
COPY storage ./storage
COPY bridge ./bridge
RUN /venv/bin/pip install --no-deps . \
 && /venv/bin/python -m compileall -q /venv/lib


FROM python:3.11-slim AS runtime
RUN useradd --system --uid 10001 --user-group --home-dir /nonexistent --shell /usr/sbin/nologin realtime \
 && mkdir /data && chown realtime:realtime /data
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data \
    DATABASE_URL=sqlite:////data/realtime.db \
    LOG_FORMAT=json
USER realtime
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# Ready = the process answers and storage answers a ping (GET /ready).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/ready' % os.environ.get('PORT', '8000'); sys.exit(0 if urllib.request.urlopen(url, timeout=2).status == 200 else 1)"]
CMD ["realtime-server", "serve"]
