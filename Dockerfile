# funnelwatch: multi-stage build, non-root runtime.
#   docker build -t funnelwatch .
#   docker run -p 127.0.0.1:9464:9464 funnelwatch demo --listen 0.0.0.0:9464
FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka and the vendored OpenSSL build with make, perl and a C compiler (all in rust:bookworm);
# cmake is not needed.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY queries queries
COPY templates templates
COPY static static
COPY benches benches
RUN cargo build --release --locked --bin funnelwatch

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin funnelwatch
COPY --from=build /src/target/release/funnelwatch /usr/local/bin/funnelwatch
USER 10001:10001
# Inside a container the server must listen on all interfaces; publish the port on 127.0.0.1 outside.
ENV FUNNELWATCH_LISTEN=0.0.0.0:9464
EXPOSE 9464
ENTRYPOINT ["funnelwatch"]
CMD ["serve"]
