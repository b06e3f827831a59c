# Stand-in for the official `swift:6.3-bookworm` image, for machines that reach no image registry
# (scripts/test-compose builds it; README, "Compose"). Built from the stand-in Debian base plus:
#   - the Debian packages the official image installs, and libncurses6, which the toolchain needs;
#   - the Swift toolchain installed on the host (its usr/ tree, mounted by scripts/test-compose at /toolchain-usr
#     with `podman build --volume`, copied to /usr as the official image unpacks its tarball to /);
#   - the host's local copy of the Swift packages (mounted at /swift-packages), copied into the image with the
#     same git `insteadOf` rule that makes https://github.com/OWNER/NAME resolve to it, as on the host.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends \
        binutils git unzip gnupg2 libc6-dev libcurl4-openssl-dev libedit2 libgcc-12-dev libpython3-dev \
        libsqlite3-0 libstdc++-12-dev libxml2-dev libncurses-dev libncurses6 libz3-dev pkg-config tzdata \
        zlib1g-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN test -x /toolchain-usr/bin/swift || { echo "mount the toolchain's usr/ at /toolchain-usr" >&2; exit 1; } \
    && cp -a /toolchain-usr/. /usr/ \
    && swift --version

RUN test -d /swift-packages || { echo "mount the Swift package copy at /swift-packages" >&2; exit 1; } \
    && mkdir -p /opt/swift-packages \
    && cp -a /swift-packages/. /opt/swift-packages/ \
    && git config --system url./opt/swift-packages/.insteadOf https://github.com/

CMD ["/bin/bash"]
