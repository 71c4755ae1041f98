# docq's container image: docq-server, docq-worker and the docq CLI on Debian 12 (slim), run as a
# non-root user (10001). Build at the repository root:
#   docker build -t docq:0.1.0 .
# The same image runs the server (the default command) and the worker (command docq-worker);
# the helm chart in helm/docq sets the command of each. Both stop cleanly on SIGTERM as PID 1
# (they block the signal and wait for it), so no init process is needed.

# Build stage: the build packages of scripts/deps (its other packages are for the tests).
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential cmake pkg-config \
      libgrpc-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev protobuf-compiler \
      libhiredis-dev libcurl4-openssl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Only the three binaries the image ships, built as ./scripts/build and the tests build them
# (RelWithDebInfo: -O2; gcc 12 at -O3 warns, and -Werror stops the build), debug info stripped.
# DOCQ_HELM_TESTS=OFF keeps the configure step from fetching the helm tests' tools.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOCQ_HELM_TESTS=OFF \
 && cmake --build build -j"$(nproc)" --target docq-server docq-worker docq \
 && strip build/bin/docq-server build/bin/docq-worker build/bin/docq

# Run stage: the shared libraries the binaries link (gRPC core with gpr, protobuf-c, hiredis,
# libcurl, OpenSSL's libcrypto) and CA certificates for an https:// AI service.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libgrpc29 libprotobuf-c1 libhiredis0.14 libcurl4 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 docq \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin docq
COPY --from=build /src/build/bin/docq-server /src/build/bin/docq-worker /src/build/bin/docq /usr/local/bin/
# Numeric, so that Kubernetes can check runAsNonRoot against the image.
USER 10001:10001
# gRPC (DOCQ_LISTEN), server metrics and worker metrics/health (DOCQ_METRICS_LISTEN).
EXPOSE 50051 9090 9091
CMD ["docq-server"]
