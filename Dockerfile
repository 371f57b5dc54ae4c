# syntax=docker/dockerfile:1
# Build stage: full dependencies to compile TypeScript.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY bench ./bench
RUN npm run build

# Runtime stage: production dependencies and the compiled output only.
FROM node:24-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    FIREBREAK_PLAYBOOKS=/app/playbooks \
    FIREBREAK_POLICIES=/app/policies
WORKDIR /app
COPY package.json package-lock.json ./
# No embedded Postgres in the image: set DATABASE_URL (install scripts are skipped).
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY src/store/migrations ./src/store/migrations
COPY playbooks ./playbooks
COPY policies ./policies
COPY schema ./schema
COPY examples ./examples
USER node
EXPOSE 8080
# Start-up refuses to listen on 0.0.0.0 without FIREBREAK_WEBHOOK_TOKEN and FIREBREAK_API_TOKEN.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "bin/firebreak.js", "serve"]
