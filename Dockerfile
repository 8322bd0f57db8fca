# Vote validation worker image.
#
#   docker build -t validation-worker .
#   docker run --rm --env-file .env -p 8000:8000 validation-worker
#
# Two stages on the same Debian release, so the runtime stage gets exactly the
# shared libraries the build linked against. Both install their packages with
# scripts/install-deps.sh, the script the README and CI use.

############################################################################
# build: toolchain + -dev packages, then the same scripts/build.sh as CI
############################################################################
FROM debian:bookworm-slim AS build

WORKDIR /src
# The dependency layer only depends on this script: editing C++ sources does
# not reinstall the toolchain.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build \
    && rm -rf /var/lib/apt/lists/*

COPY . .
# RelWithDebInfo (the CI default) keeps the optimised code identical to what
# the tests ran against; the debug info is split off below so the image stays
# small while /src/build/validation-worker.debug can still be extracted from
# this stage (docker build --target build) for symbolising a core dump.
ARG CMAKE_BUILD_TYPE=RelWithDebInfo
RUN BUILD_DIR=/src/build CMAKE_BUILD_TYPE="$CMAKE_BUILD_TYPE" scripts/build.sh \
    && objcopy --only-keep-debug build/validation-worker build/validation-worker.debug \
    && strip --strip-debug build/validation-worker \
    && objcopy --add-gnu-debuglink=build/validation-worker.debug build/validation-worker

############################################################################
# runtime: shared libraries only, non-root
############################################################################
FROM debian:bookworm-slim AS runtime

COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh runtime \
    && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh

# A fixed uid/gid 10001 (outside the image's system range, so no clash with a
# host user when volumes are shared); --no-log-init keeps a high uid from
# creating huge sparse lastlog/faillog files.
RUN groupadd --gid 10001 worker \
    && useradd --uid 10001 --gid worker --no-log-init --no-create-home \
       --home-dir /app --shell /usr/sbin/nologin worker \
    && mkdir -p /app /usr/share/validation-worker \
    && chown worker:worker /app

COPY --from=build /src/build/validation-worker /usr/local/bin/validation-worker
# For reference (docker-compose applies the same file to its PostgreSQL):
#   docker run --rm --entrypoint cat validation-worker /usr/share/validation-worker/schema.sql
COPY sql/schema.sql /usr/share/validation-worker/schema.sql

# The worker reads .env from its working directory when present (mount one at
# /app/.env, or better pass the variables with --env-file / env_file).
WORKDIR /app
USER 10001:10001

ENV METRICS_BIND=0.0.0.0 \
    METRICS_PORT=8000
EXPOSE 8000

# /readyz on 127.0.0.1:$METRICS_PORT: healthy = connected to RabbitMQ, Redis
# and PostgreSQL and consuming. start-period covers the broker handshake and
# the start-up schema check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["validation-worker", "--health-check"]

# Exec form: the worker is PID 1 and receives SIGTERM itself (graceful stop:
# finish in-flight work, ack, close connections, exit 0 within
# SHUTDOWN_TIMEOUT). Give it more than that before SIGKILL, e.g.
# `docker stop -t 40` / compose stop_grace_period: 40s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["validation-worker"]
