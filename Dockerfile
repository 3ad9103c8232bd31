# confab container image: the confab binary on a slim Debian base.
#
#   docker build -t confab .
#   docker run -d --name confab -p 4000:4000 -v confab-data:/data confab
#
# Builder and runtime use the same Debian release so the binary's glibc matches.
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
# The runtime stage's base. dist/container-test.sh builds that stage on a
# local Debian base made with debootstrap (see README, Docker).
ARG RUNTIME_BASE=debian:${DEBIAN_RELEASE}-slim

# ---- Stage 1: build -------------------------------------------------------
# Compiles the release binary. Dependencies are built first against a dummy
# crate, so editing src/ or assets/ does not rebuild them.
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /build

# Dependency layer: changes only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# Real sources. The web UI in assets/ is embedded into the binary at compile
# time. COPY may keep older mtimes than the dummy build's outputs, so touch the
# crate roots to make cargo rebuild confab itself. The last check fails the
# build if the dummy binary (which prints nothing) were left in place.
COPY assets ./assets
COPY config.toml ./
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && test -n "$(./target/release/confab --version)"

# ---- Stage 2: runtime -----------------------------------------------------
# Only the binary: no shell wrapper, no curl (the healthcheck is a subcommand),
# no libssl (pure-Rust crypto). Runs as an unprivileged user that owns /data.
FROM ${RUNTIME_BASE} AS runtime
ARG CONFAB_UID=65532

# Create the user and /data owned by it. Docker copies this ownership into a
# new, empty named volume mounted on /data, so the volume is writable.
# (-l: no lastlog entry, which would bloat the image for a high UID.)
RUN groupadd --gid "${CONFAB_UID}" confab \
    && useradd -l --uid "${CONFAB_UID}" --gid confab --no-create-home \
        --home-dir /data --shell /usr/sbin/nologin confab \
    && install -d -m 0700 -o confab -g confab /data

COPY --from=builder /build/target/release/confab /confab

# Inside a container: listen on all interfaces, keep all state in /data
# (the redb file is /data/confab.redb). Environment beats config.toml, so
# change the port with CONFAB_LISTEN; the healthcheck reads it too.
ENV CONFAB_DATA_DIR=/data \
    CONFAB_LISTEN=0.0.0.0:4000

USER ${CONFAB_UID}:${CONFAB_UID}
VOLUME /data
EXPOSE 4000

# GET /healthz on the configured listen address, 3 s client timeout.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/confab", "healthcheck"]

# The binary is PID 1 and handles SIGTERM itself: it drains within
# shutdown_grace_secs (default 8 s), inside Docker's 10 s stop timeout.
# Arguments after the image name replace CMD, e.g. `... confab user list`.
ENTRYPOINT ["/confab"]
CMD ["serve"]
