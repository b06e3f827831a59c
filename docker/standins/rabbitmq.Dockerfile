# Stand-in for the official `rabbitmq:3.13-management` image, for machines that reach no image registry
# (scripts/test-compose builds it; README, "Compose"): Debian's rabbitmq-server (3.10) with the management plugin
# on the stand-in Debian base, and an entry point of our own (rabbitmq-entrypoint.sh) that honours what
# compose.yaml relies on.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends rabbitmq-server \
    && rm -rf /var/lib/apt/lists/* \
    && echo '[rabbitmq_management].' >/etc/rabbitmq/enabled_plugins \
    && rm -f /var/lib/rabbitmq/.erlang.cookie

# No Erlang cookie in the image (the package's install made one): the node writes a fresh one into the volume on
# its first start. The CLI tools (rabbitmq-diagnostics in compose's health check) find it in HOME.
ENV HOME=/var/lib/rabbitmq
COPY rabbitmq-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/rabbitmq
EXPOSE 4369 5672 15672 25672
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["rabbitmq-server"]
