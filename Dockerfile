# The farm's own image: api, coordinator and agent are the same build, started with different
# npm scripts (docker-compose.yml). Agents need buildah, git and qemu-user-static.
FROM node:20-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends buildah git skopeo qemu-user-static ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /farm
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN PRISMA_SCHEMA_ENGINE_BINARY=/bin/true npx prisma generate && npm run build
