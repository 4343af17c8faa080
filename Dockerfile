# One image for every Tether service. The task definition picks the bundle:
#   docker build -t tether .
#   docker run tether                      # the default service (edge, or --build-arg SERVICE=...)
#   docker run tether dist/worker.mjs      # worker
#   docker run tether dist/admin.mjs       # admin API
# The CDK stack builds it once and sets each task's command to its bundle.

ARG NODE_IMAGE=node:24-bookworm

# ---- build: bundle the TypeScript, compile the Kafka client against Debian's libraries ----
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config python3 \
      libssl-dev libsasl2-dev libzstd-dev liblz4-dev zlib1g-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies first, so source edits reuse this layer. Install scripts are skipped here:
# esbuild works from its platform package, and the Kafka client is built below, once.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

COPY tsconfig.json ./
COPY scripts/build.mjs scripts/build.mjs
COPY shared shared
COPY services services
RUN node scripts/build.mjs

# Only the external packages (dist/package.json lists them with pinned versions) are
# installed next to the bundles. librdkafka is compiled from the sources in the npm package
# and linked dynamically to the system's OpenSSL, SASL, zstd, lz4, zlib and curl, which the
# runtime stage installs.
ENV CKJS_LINKING=dynamic \
    npm_config_build_from_source=true \
    npm_config_nodedir=/usr/local
RUN cd dist \
 && npm install --omit=dev --no-audit --no-fund --no-package-lock \
 && node -e "require('@confluentinc/kafka-javascript')" \
 && rm -rf node_modules/@confluentinc/kafka-javascript/deps/librdkafka \
           node_modules/@confluentinc/kafka-javascript/build/Release/obj.target \
           node_modules/@confluentinc/kafka-javascript/build/deps/*.a

# ---- runtime: slim Debian with the shared libraries librdkafka needs ----
FROM ${NODE_IMAGE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libssl3 libsasl2-2 libzstd1 liblz4-1 zlib1g libcurl4 ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production \
    TETHER_ENV=production
WORKDIR /app
COPY --from=build --chown=root:root /src/dist ./dist

# Bundled Swagger UI looks for its assets in <bundle dir>/../static (see scripts/build.mjs).
RUN if [ -d dist/static ]; then ln -s dist/static static; fi

# The default command runs dist/main.mjs, a link to the bundle named by SERVICE.
ARG SERVICE=edge
RUN test -f "dist/${SERVICE}.mjs" && ln -s "${SERVICE}.mjs" dist/main.mjs

# The node image ships an unprivileged `node` user (uid 1000); the code stays root-owned, so
# the process cannot change it.
USER node

# Edge devices, edge HTTP, worker HTTP, admin API.
EXPOSE 3000 9090 9091 8080

# tini as PID 1 forwards SIGTERM to node and reaps zombies; each service drains on SIGTERM.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--enable-source-maps"]
CMD ["dist/main.mjs"]
