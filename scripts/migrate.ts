// `node dist/scripts/migrate.js` (npm run migrate): applies prisma/migrations to DATABASE_URL the
// way `prisma migrate deploy` would, without Prisma's schema engine (see libs/db/src/migrate.ts).
import { applyMigrations } from '@farm/db';

const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/buildfarm';

async function main(): Promise<void> {
  const databaseUrl = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const { applied } = await applyMigrations(databaseUrl, { log: (line) => console.log(line) });
  console.log(
    applied.length === 0 ? 'database is up to date' : `applied ${applied.length} migration(s): ${applied.join(', ')}`,
  );
}

main().catch((err: unknown) => {
  console.error(`migrate: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
