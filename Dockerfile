# syntax=docker/dockerfile:1
# Build stage: compiles TypeScript and better-sqlite3 (its prebuilt binary cannot be fetched here).
FROM node:20-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
RUN npm ci && npm prune --omit=dev

# Runtime stage: compiled code, production dependencies, profiles, forests and migrations.
FROM node:20-slim
ENV NODE_ENV=production PORT=8080 LORAPLAN_DB=/data/loraplan.db
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY models ./models
COPY migrations ./migrations
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# A worker serves no HTTP: the check passes for it (its liveness is its Redis connection).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "if(process.env.LORAPLAN_ROLE==='worker')process.exit(0);fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# `serve` (the default: the same command as `npm start`) or `worker` (runs queued twin jobs; set
# LORAPLAN_REDIS_URL). No npm in the process tree, so signals reach node.
ENTRYPOINT ["node", "bin/loraplan.js"]
CMD ["serve"]
