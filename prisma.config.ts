import { defineConfig } from 'prisma/config';

// Only `prisma generate` and `prisma migrate` read this; the apps get DATABASE_URL from libs/config.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/buildfarm' },
});
