# One image with the three service binaries; docker-compose.yml picks one per
# service with `command`. Multi-stage: dependencies are compiled in their own
# layer (cargo-chef), so a change to Vapora's code rebuilds only Vapora.
#
#   docker build -t vapora .
#
# The runtime stage is Debian slim with CA certificates (the gateway and agent
# servers call LLM providers over TLS) and nothing else: health checks run the
# binaries' own `healthcheck` subcommand, not curl.

ARG RUST_VERSION=1.91

FROM rust:${RUST_VERSION}-bookworm AS chef
RUN cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked \
      --bin vapora-backend --bin vapora-agent-server --bin vapora-llm-gateway

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/vapora --create-home vapora
COPY --from=builder /src/target/release/vapora-backend \
                    /src/target/release/vapora-agent-server \
                    /src/target/release/vapora-llm-gateway /usr/local/bin/
COPY config/roles.toml config/llm.toml /etc/vapora/
ENV VAPORA_ROLES_FILE=/etc/vapora/roles.toml \
    VAPORA_LLM_CONFIG=/etc/vapora/llm.toml
USER vapora
WORKDIR /var/lib/vapora
EXPOSE 8001 8003
CMD ["vapora-backend"]
