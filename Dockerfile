# syntax=docker/dockerfile:1
#
# One image per service, all from this file: `docker build --build-arg PRODUCT=Order -t awsomepets/order .`
# (compose.yaml does this for all five). PRODUCT is one of the executable products of Package.swift:
# Order, Inventory, Payment, Orchestrator, Notifier.
#
# The build mirrors the native one (scripts/lib.sh, pets_build): Debian 12 with librabbitmq-dev and pkg-config,
# `swift build -c release`. The runtime image holds only the binary, its shared libraries and, for Order, the web
# shop's static files. No secret is baked in: every credential comes from the environment at run time.
# Tests/static/test_deployment.py checks that this file, compose.yaml and the native scripts agree.

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------------------------
# Build: the Swift toolchain on Debian bookworm, the same distribution the native scripts target.
FROM ${SWIFT_IMAGE} AS build

# rabbitmq-c headers for the CRabbitMQ system library target (pkg-config name `librabbitmq`).
# Versions are those of bookworm's security-updated archive, as on the native machines (not pinned).
# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends librabbitmq-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# Dependencies first: this layer is reused until Package.swift changes (and shared by all five images, since
# nothing above depends on PRODUCT).
COPY Package.swift ./
RUN swift package resolve

# The manifest names test and tool targets too, so their folders must exist for the package to load. Only the
# Swift test targets: an edit to the Python suites beside them (Tests/e2e, ...) must not invalidate the compile.
COPY Shared/ Shared/
COPY Services/ Services/
COPY Tests/AMQPTests/ Tests/AMQPTests/
COPY Tests/PersistenceTests/ Tests/PersistenceTests/
COPY Tests/ServiceKitTests/ Tests/ServiceKitTests/
COPY Tests/SagaEngineTests/ Tests/SagaEngineTests/
COPY Tests/IntegrationTests/ Tests/IntegrationTests/
COPY Tools/Loadgen/ Tools/Loadgen/

# All five products in one step that does not depend on PRODUCT: every image shares this layer, so
# `docker compose build` compiles the package graph once, not once per service (with a classic builder such as
# podman's, build the images one at a time: COMPOSE_PARALLEL_LIMIT=1; README, "Compose"). The list is
# Package.swift's service products; Tests/static/test_deployment.py checks that.
RUN for product in Order Inventory Payment Orchestrator Notifier; do \
        swift build -c release --product "$product" --static-swift-stdlib || exit 1; \
    done

# Declared here, not earlier, so the layers above are cached once for every product: PRODUCT only picks the binary.
ARG PRODUCT
RUN case "$PRODUCT" in \
        Order|Inventory|Payment|Orchestrator|Notifier) ;; \
        *) echo "build arg PRODUCT must be one of Order, Inventory, Payment, Orchestrator, Notifier (got '$PRODUCT')" >&2; \
           exit 1 ;; \
    esac

# Stage what the runtime image needs: the binary, any SwiftPM resource bundles, and the static backtracer
# (with a statically linked stdlib, SWIFT_BACKTRACE needs the static swift-backtrace next to the binary).
RUN bin="$(swift build -c release --show-bin-path)" \
    && mkdir -p /staging \
    && cp "$bin/$PRODUCT" /staging/ \
    && find -L "$bin/" -maxdepth 1 -name '*.resources' -exec cp -Ra {} /staging/ \; \
    && cp /usr/libexec/swift/linux/swift-backtrace-static /staging/

# ---------------------------------------------------------------------------------------------------------------
# Web shop files: Public/ if the repository has one (it may not), and only for Order. A stage of its own so a
# change to the sources never invalidates it and a missing Public/ never breaks the build.
FROM ${RUNTIME_IMAGE} AS web
ARG PRODUCT
WORKDIR /src
COPY . .
RUN mkdir -p Public /out/Public \
    && if [ "$PRODUCT" = Order ]; then cp -R Public/. /out/Public/; fi

# ---------------------------------------------------------------------------------------------------------------
# Runtime: Debian bookworm slim with only the shared libraries the binary links dynamically.
#   librabbitmq4     rabbitmq-c (the runtime half of librabbitmq-dev)
#   libcurl4         FoundationNetworking (the Notifier's URLSession client)
#   ca-certificates  TLS roots;  tzdata: time zones for Foundation
#   curl             compose's health checks (GET /health)
FROM ${RUNTIME_IMAGE} AS runtime
ARG PRODUCT

# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends librabbitmq4 libcurl4 ca-certificates tzdata curl \
    && rm -rf /var/lib/apt/lists/*

# A fixed non-root uid/gid, so volume permissions and runAsNonRoot policies are predictable.
RUN groupadd --gid 10001 pets \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin pets

WORKDIR /app
# Owned by root and read-only to the service user: the services write nothing to disk.
COPY --from=build /staging/ /app/
COPY --from=web /out/Public/ /app/Public/
# The REST API's OpenAPI document, served by the Order service at GET /openapi.yaml (relative to WORKDIR).
COPY openapi.yaml /app/openapi.yaml
RUN ln -s "/app/$PRODUCT" /app/service

LABEL org.opencontainers.image.title="AWSomePets ${PRODUCT}" \
      org.opencontainers.image.description="AWSomePets ${PRODUCT} service"

# Crash reports with all threads, no interaction, secrets scrubbed; the backtracer copied from the build stage.
ENV SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/app/swift-backtrace-static
# In a container the service must listen on every interface (the native default is 127.0.0.1).
ENV PETS_HTTP_HOST=0.0.0.0
ENV PETS_WEB_ROOT=/app/Public
# As scripts/lib.sh starts the services: two malloc arenas, not 8 per core (resident memory).
ENV MALLOC_ARENA_MAX=2

USER 10001:10001
# No HEALTHCHECK here: compose.yaml defines one per service (curl GET /health on its port).
ENTRYPOINT ["/app/service"]
