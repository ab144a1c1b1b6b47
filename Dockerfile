# The vxflow image for the Kubernetes DaemonSet (deploy/kubernetes/vxflow.yaml).
# Build: docker build -t ghcr.io/vxflow/vxflow:0.1.0 .
# The eBPF programs need nightly Rust with rust-src and bpf-linker 0.10 (newer
# releases need a system LLVM Debian 12 lacks); the image runs on any node
# kernel 5.15+ with BTF.

FROM rust:1.95-bookworm AS build
# protoc builds the container runtime's CRI API (the k8s-cri crate).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/* \
 && rustup toolchain install nightly --profile minimal --component rust-src \
 && cargo install bpf-linker@0.10.0 --locked
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p vxflow \
 && install -D -m 0755 target/release/vxflow /out/usr/bin/vxflow \
 && install -D -m 0644 config/vxflow.toml /out/etc/vxflow/vxflow.toml

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/ /
# Root in the container, with only CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON
# (the DaemonSet drops the rest): Kubernetes gives added capabilities to
# root only.
# hadolint ignore=DL3002
USER 0:0
EXPOSE 9739
ENTRYPOINT ["/usr/bin/vxflow"]
CMD ["run", "--config", "/etc/vxflow/vxflow.toml"]
