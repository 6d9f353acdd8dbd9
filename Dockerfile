# leasehold sidecar image. State (signing key, admin token, audit file) lives under /var/lib/leasehold,
# mount a volume there; the root filesystem can be read-only.
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
RUN npx tsc -p tsconfig.build.json

FROM node:20-bookworm-slim
ENV NODE_ENV=production LEASEHOLD_CONFIG=/etc/leasehold/leasehold.yaml
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
RUN mkdir -p /var/lib/leasehold /etc/leasehold && chown -R node:node /var/lib/leasehold
USER node
VOLUME ["/var/lib/leasehold"]
EXPOSE 7733
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:7733/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/sidecar/cli.js"]
CMD ["serve"]
