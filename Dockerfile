# leasehold sidecar image.
#
# Two stages: the first compiles TypeScript with the dev dependencies, the second holds only
# the compiled code and the production dependencies (`npm ci --omit=dev`) and runs as the
# unprivileged `node` user. Everything the sidecar writes (lease-token signing key, admin
# token, audit file, agent trust bundle) lives under /var/lib/leasehold: mount a volume there
# and run the container with a read-only root filesystem (compose.yaml does both).
#
#   docker build -t leasehold .
#   docker run --read-only -v leasehold-state:/var/lib/leasehold \
#     -v ./leasehold.yaml:/etc/leasehold/leasehold.yaml:ro leasehold

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY sidecar ./sidecar
COPY adapters ./adapters
COPY scripts ./scripts
COPY test/vault-dev ./test/vault-dev
COPY test/support ./test/support
# tsc, then the CLI bundled by esbuild into dist/cli/ (scripts/bundle.mjs; the entrypoint).
RUN npx tsc -p tsconfig.build.json && node scripts/bundle.mjs

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    LEASEHOLD_CONFIG=/etc/leasehold/leasehold.yaml
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
# The operator dashboard's static files, next to the compiled module that serves them (the
# bundled CLI in dist/cli/ finds them there too).
COPY sidecar/ops/ui ./dist/sidecar/ops/ui
RUN mkdir -p /var/lib/leasehold /etc/leasehold \
  && chown node:node /var/lib/leasehold \
  && chmod 0700 /var/lib/leasehold
# The image's own user (uid 1000), never root: the sidecar needs no privilege.
USER node
VOLUME ["/var/lib/leasehold"]
EXPOSE 7733
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:7733/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/cli/leasehold.mjs"]
CMD ["serve"]
