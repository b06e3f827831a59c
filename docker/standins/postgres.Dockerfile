# Stand-in for the official `postgres:15` image, for machines that reach no image registry (scripts/test-compose
# builds it; README, "Compose"): Debian's PostgreSQL 15 on the stand-in Debian base, with an entry point of our own
# (postgres-entrypoint.sh) that honours what compose.yaml relies on.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

# No cluster from the package: the entry point creates one in PGDATA (the volume) on the first start.
# hadolint ignore=DL3008
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/no-main-cluster.conf \
    && export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /docker-entrypoint-initdb.d

ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
# As the official image: a fast shutdown on SIGINT.
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
