# syntax=docker/dockerfile:1
#
# Updraft in a container: a Rust build stage, then a small runtime stage
# (glibc, CA certificates, the one binary) running as a non-root user with
# its data in the /data volume. Configuration by environment (UPDRAFT_*,
# see the README's configuration table); docs/deploy.md for the whole story.
#
#   docker build -t updraft .
#   docker run -d --name updraft -p 8080:8080 -v updraft-data:/data updraft
#   docker exec updraft updraft apikey create --name me
#
# The base images are build arguments with public defaults, so a mirror or a
# pinned digest is one flag away:
#   --build-arg RUST_IMAGE=registry.internal/rust:1-bookworm
#   --build-arg RUNTIME_IMAGE=registry.internal/distroless/cc-debian12:nonroot

ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
# Where the binary comes from: `build` compiles it below; `prebuilt` takes a
# directory of the build context laid out like the build stage's /out (an
# `updraft` binary and an empty `data/`), e.g. one a CI job already built
# (scripts/package-check.sh does this).
ARG BINARY_SOURCE=build

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --package updraft --bin updraft \
 && install -D -m 0755 target/release/updraft /out/updraft \
 && install -d -m 0755 /out/data

FROM scratch AS prebuilt
ARG PREBUILT=target/package-check/prebuilt
COPY ${PREBUILT}/ /out/

FROM ${BINARY_SOURCE} AS binary

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="Updraft" \
      org.opencontainers.image.description="Self-hosted live-update server for Capacitor apps (@capgo/capacitor-updater)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=binary /out/updraft /usr/local/bin/updraft
# The volume's mount point, owned by the user the server runs as (a new
# named volume starts with this ownership).
COPY --from=binary --chown=65532:65532 /out/data /data
# 65532 is distroless' `nonroot`; numeric, so any base image works.
USER 65532:65532
ENV UPDRAFT_DATA_DIR=/data \
    UPDRAFT_LISTEN=0.0.0.0:8080
# `updraft apikey create` (docker exec) opens the same installation; an
# updraft.toml in the volume is read too.
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# The image has no shell or curl: the binary probes its own GET /readyz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/updraft", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/updraft"]
CMD ["serve"]
