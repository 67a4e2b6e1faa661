// Scratch PostgreSQL databases for integration tests: each test file gets its own, uniquely
// named, on the local server (127.0.0.1:5432, user postgres, trust auth; DESIGN.md), and drops it.
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { applyMigrations } from '@farm/db';

const SERVER_URL = 'postgresql://postgres@127.0.0.1:5432';
const NAME_PREFIX = 'farm_test_';

/** A scratch database owned by one test file. */
export interface TestDatabase {
  /** Connection string (DATABASE_URL) of the database. */
  url: string;
  /** Database name, `farm_test_<time>_<random>`. */
  name: string;
  /** Terminates every connection to the database and drops it; safe to call twice. */
  drop(): Promise<void>;
}

/**
 * Creates a fresh, uniquely named database with `prisma/migrations` applied (through the
 * project's own migrate step). Call `drop()` in `afterAll`.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const db = reserveTestDatabase();
  try {
    await applyMigrations(db.url);
  } catch (err) {
    await db.drop();
    throw err;
  }
  return db;
}

/**
 * A unique database name and URL, not created yet: whatever connects first creates it (for
 * example `applyMigrations`). `drop()` removes it if it came to exist.
 */
export function reserveTestDatabase(): TestDatabase {
  const name = `${NAME_PREFIX}${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  return {
    name,
    url: `${SERVER_URL}/${name}`,
    drop: () => dropTestDatabase(name),
  };
}

async function dropTestDatabase(name: string): Promise<void> {
  // Never drop anything this helper did not name.
  if (!/^farm_test_[a-z0-9]+_[0-9a-f]{8}$/.test(name)) throw new Error(`refusing to drop ${name}`);
  const admin = new Client({ connectionString: `${SERVER_URL}/postgres` });
  await admin.connect();
  try {
    // FORCE terminates the remaining connections first (PostgreSQL 13+).
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
