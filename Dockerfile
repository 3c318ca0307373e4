# syntax=docker/dockerfile:1
# Gatehouse container image. Build from the repository root:
#   docker build -t gatehouse:dev .
# deploy/README.md says how the image is used (Kubernetes, Compose) and what was tested.

# --- build -------------------------------------------------------------------------------
# The Debian release of the builder matches the runtime's (bookworm = debian12), so the
# binary links against the same glibc it finds at run time.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# What cargo reads to build the binary: the manifest and lockfile, the sources, and the
# workspace's other parts the manifest names (the bench target, the load generator's package).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY bench/loadgen ./bench/loadgen
# Cache mounts keep the registry and target directory between builds; the binary is copied
# out because a cache mount is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0555 target/release/gatehouse /out/gatehouse

# --- run ---------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc, CA certificates (for fetching JWKS from the identity
# provider) and /etc/passwd with `nonroot` (65532); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
# Public TLS listener and admin listener (/healthz, /readyz, /metrics). The admin port is
# for the kubelet and Prometheus inside the cluster, never for a Service.
EXPOSE 8443 9901
# Nothing is written at run time: the image runs with a read-only root filesystem. The
# configuration, policies and certificates are mounted under /etc/gatehouse/ by the
# orchestrator (see deploy/kubernetes and deploy/compose). No HEALTHCHECK: the orchestrator
# probes the admin port.
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["run", "--config", "/etc/gatehouse/config/gatehouse.yaml"]
