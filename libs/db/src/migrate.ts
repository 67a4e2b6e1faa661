// Applies prisma/migrations without Prisma's schema engine, which cannot be downloaded on the
// machines this farm runs on. It behaves like `prisma migrate deploy` where it matters: same
// advisory lock, same `_prisma_migrations` table and rows, same checksums. A database migrated
// here is therefore "up to date" for `prisma migrate deploy|status` on a machine that has the
// engine, and the other way round.
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Client } from 'pg';

/** Prisma Migrate's advisory lock key: this runner and `prisma migrate` exclude each other. */
const PRISMA_MIGRATE_LOCK_KEY = 72707369;

/**
 * How long a starter waits for another migrator before giving up. Prisma waits 10 s; replicas
 * starting together should rather wait for a slow migration than crash-loop.
 */
const LOCK_TIMEOUT = '60s';

/** Prisma's own DDL (schema engine, PostgreSQL flavour), verbatim. */
const CREATE_MIGRATIONS_TABLE = `CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);`;

/** Options of {@link applyMigrations}. */
export interface ApplyMigrationsOptions {
  /**
   * Directory in Prisma's layout (`<timestamp>_<name>/migration.sql` + `migration_lock.toml`).
   * Defaults to the nearest `prisma/migrations` above this module, else above the working directory.
   */
  migrationsDir?: string;
  /** Receives a line per notable step: database created, migration applied, warnings. */
  log?: (line: string) => void;
}

/** Result of {@link applyMigrations}. */
export interface ApplyMigrationsResult {
  /** Names of the migrations applied by this call, in order; empty when already up to date. */
  applied: string[];
}

/** Why {@link applyMigrations} refused or failed. */
export type MigrationErrorCode =
  | 'invalid-migrations'
  | 'invalid-url'
  | 'lock-timeout'
  | 'schema-not-empty'
  | 'failed-migration'
  | 'checksum-mismatch'
  | 'apply-failed';

/** A refusal or failure of {@link applyMigrations}; the message says what to do about it. */
export class MigrationError extends Error {
  constructor(
    readonly code: MigrationErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

interface LocalMigration {
  name: string;
  script: string;
  checksum: string;
}

interface MigrationRecord {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

/**
 * Brings the database at `databaseUrl` up to date with the migrations directory, the way
 * `prisma migrate deploy` does: creates the database if it does not exist, serializes concurrent
 * callers with Prisma's advisory lock, creates `_prisma_migrations` exactly as Prisma does, and
 * applies each pending migration in name order, each in its own transaction, recording it as
 * Prisma would (uuid id, sha256 checksum of `migration.sql`, started/finished times, one step).
 *
 * Refuses, with a {@link MigrationError} and without applying anything, when a recorded migration
 * failed (finished_at and rolled_back_at both null) or when an applied migration's file changed
 * since. A migration that fails is rolled back and not recorded, so it can be fixed and retried.
 *
 * A `schema` query parameter in the URL selects the PostgreSQL schema, as it does for Prisma.
 */
export async function applyMigrations(
  databaseUrl: string,
  opts: ApplyMigrationsOptions = {},
): Promise<ApplyMigrationsResult> {
  const log = opts.log ?? (() => undefined);
  const migrationsDir = resolve(opts.migrationsDir ?? findMigrationsDir());
  const local = readMigrations(migrationsDir);
  const target = parseDatabaseUrl(databaseUrl);

  const client = await connectCreatingDatabase(target, log);
  try {
    await acquireLock(client);
    try {
      await useSchema(client, target.schema);
      const records = await readRecords(client, target.schema);
      return { applied: await applyPending(client, local, records, log) };
    } finally {
      // Ending the session releases the lock anyway; a failed unlock must not hide the real error.
      await client.query('SELECT pg_advisory_unlock($1)', [PRISMA_MIGRATE_LOCK_KEY]).catch(() => undefined);
    }
  } finally {
    await client.end();
  }
}

/**
 * sha256 of a migration script, as Prisma renders it: lowercase hex of the UTF-8 bytes.
 * Prisma hashes the script it read as UTF-8 text, which for a valid UTF-8 file is the file itself.
 */
export function migrationChecksum(script: string): string {
  return createHash('sha256').update(script, 'utf8').digest('hex');
}

/**
 * Whether a recorded checksum matches a script, with Prisma's tolerance: the script may have
 * gained or lost CRLF line endings (git on Windows), and very old Prisma versions stored
 * checksums without zero-padding each byte.
 */
function checksumMatches(script: string, recorded: string): boolean {
  const variants = [script, script.replace(/\r\n/g, '\n'), script.replace(/\n/g, '\r\n')];
  return variants.some((variant) => {
    const digest = createHash('sha256').update(variant, 'utf8').digest();
    const rendered =
      recorded.length === 64 ? digest.toString('hex') : Array.from(digest, (byte) => byte.toString(16)).join('');
    return rendered === recorded;
  });
}

function findMigrationsDir(): string {
  for (const start of [__dirname, process.cwd()]) {
    for (let dir = start; ; dir = dirname(dir)) {
      const candidate = join(dir, 'prisma', 'migrations');
      if (existsSync(join(candidate, 'migration_lock.toml'))) return candidate;
      if (dirname(dir) === dir) break;
    }
  }
  throw new MigrationError(
    'invalid-migrations',
    `no prisma/migrations directory (with migration_lock.toml) above ${__dirname} or ${process.cwd()}; ` +
      'run from the repository root or pass migrationsDir',
  );
}

function readMigrations(migrationsDir: string): LocalMigration[] {
  if (!existsSync(migrationsDir)) {
    throw new MigrationError('invalid-migrations', `migrations directory ${migrationsDir} does not exist`);
  }
  const lockfile = join(migrationsDir, 'migration_lock.toml');
  if (existsSync(lockfile)) {
    const provider = /^\s*provider\s*=\s*"([^"]*)"/m.exec(readFileSync(lockfile, 'utf8'))?.[1];
    if (provider !== 'postgresql') {
      throw new MigrationError(
        'invalid-migrations',
        `${lockfile} says provider = "${provider ?? ''}", but these migrations are applied to PostgreSQL`,
      );
    }
  }
  // Same selection and order as Prisma: every subdirectory, sorted with localeCompare.
  const names = readdirSync(migrationsDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort((a, b) => a.localeCompare(b));
  return names.map((name) => {
    const file = join(migrationsDir, name, 'migration.sql');
    if (!existsSync(file)) {
      throw new MigrationError('invalid-migrations', `migration ${name} has no migration.sql (${file})`);
    }
    const script = readFileSync(file, 'utf8');
    return { name, script, checksum: migrationChecksum(script) };
  });
}

interface DatabaseTarget {
  /** Connection string for pg, without Prisma-only parameters. */
  url: URL;
  database: string;
  schema: string;
}

function parseDatabaseUrl(databaseUrl: string): DatabaseTarget {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch (err) {
    throw new MigrationError('invalid-url', 'DATABASE_URL is not a valid URL', { cause: err });
  }
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') {
    throw new MigrationError('invalid-url', `DATABASE_URL must be a postgresql:// URL, not ${url.protocol}//`);
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (database === '') {
    throw new MigrationError('invalid-url', 'DATABASE_URL names no database (postgresql://host:port/<database>)');
  }
  const schema = url.searchParams.get('schema') ?? 'public';
  url.searchParams.delete('schema');
  return { url, database, schema };
}

async function connect(url: URL, database: string): Promise<Client> {
  const withDatabase = new URL(url.href);
  withDatabase.pathname = `/${encodeURIComponent(database)}`;
  const client = new Client({ connectionString: withDatabase.href });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

function pgErrorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

async function connectCreatingDatabase(target: DatabaseTarget, log: (line: string) => void): Promise<Client> {
  try {
    return await connect(target.url, target.database);
  } catch (err) {
    if (pgErrorCode(err) !== '3D000') throw err; // anything but "database does not exist"
  }
  const admin = await connectAdmin(target.url);
  try {
    await admin.query(`CREATE DATABASE ${quoteIdent(target.database)}`);
    log(`created database ${target.database}`);
  } catch (err) {
    // Another starter won the race: duplicate_database, or the catalog's unique index.
    if (pgErrorCode(err) !== '42P04' && pgErrorCode(err) !== '23505') throw err;
  } finally {
    await admin.end();
  }
  return connect(target.url, target.database);
}

/** Like Prisma: the first of these maintenance databases that exists. */
async function connectAdmin(url: URL): Promise<Client> {
  for (const database of ['postgres', 'template1']) {
    try {
      return await connect(url, database);
    } catch (err) {
      if (pgErrorCode(err) !== '3D000') throw err;
    }
  }
  throw new MigrationError(
    'invalid-url',
    'the database does not exist and neither "postgres" nor "template1" is there to create it from',
  );
}

async function acquireLock(client: Client): Promise<void> {
  await client.query(`SET lock_timeout = '${LOCK_TIMEOUT}'`);
  try {
    await client.query('SELECT pg_advisory_lock($1)', [PRISMA_MIGRATE_LOCK_KEY]);
  } catch (err) {
    if (pgErrorCode(err) !== '55P03') throw err;
    throw new MigrationError(
      'lock-timeout',
      `another migrator has held the migration lock (pg_advisory_lock(${PRISMA_MIGRATE_LOCK_KEY})) ` +
        `for ${LOCK_TIMEOUT}; see pg_locks for the session holding it`,
      { cause: err },
    );
  } finally {
    await client.query('RESET lock_timeout');
  }
}

async function useSchema(client: Client, schema: string): Promise<void> {
  // Prisma creates the URL's schema when it is missing, and works inside it.
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
  await client.query(`SET search_path TO ${quoteIdent(schema)}`);
}

async function readRecords(client: Client, schema: string): Promise<MigrationRecord[]> {
  const exists = await client.query<{ exists: boolean }>(
    `SELECT to_regclass(format('%I._prisma_migrations', $1::text)) IS NOT NULL AS exists`,
    [schema],
  );
  if (!exists.rows[0]?.exists) {
    await refuseUnlessEmpty(client, schema);
    await client.query(CREATE_MIGRATIONS_TABLE);
    return [];
  }
  const result = await client.query<MigrationRecord>(
    'SELECT migration_name, checksum, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY started_at',
  );
  return result.rows;
}

/** Prisma's P3005: a schema built without migrations (e.g. `db push`) must be baselined first. */
async function refuseUnlessEmpty(client: Client, schema: string): Promise<void> {
  const result = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
     UNION ALL
     SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname = $1 AND t.typtype = 'e'`,
    [schema],
  );
  if (result.rows.length > 0) {
    const names = result.rows.map((row) => row.name).sort();
    throw new MigrationError(
      'schema-not-empty',
      `schema "${schema}" already holds ${names.join(', ')} but has no _prisma_migrations table, so ` +
        'nobody knows which migrations built it. Baseline it (mark the migrations it already contains ' +
        'as applied, as `prisma migrate resolve --applied` does) or start from an empty database.',
    );
  }
}

async function applyPending(
  client: Client,
  local: LocalMigration[],
  records: MigrationRecord[],
  log: (line: string) => void,
): Promise<string[]> {
  const failed = records.filter((r) => r.finished_at === null && r.rolled_back_at === null);
  if (failed.length > 0) {
    throw new MigrationError(
      'failed-migration',
      `migration(s) ${failed.map((r) => r.migration_name).join(', ')} failed earlier and may be half applied; ` +
        'no further migrations are applied until that is resolved: fix the database by hand, then mark ' +
        'each as rolled back (`prisma migrate resolve --rolled-back <name>`, or set ' +
        '_prisma_migrations.rolled_back_at) to retry it, or as applied (`--applied`).',
    );
  }

  const applied = records.filter((r) => r.rolled_back_at === null);
  const byName = new Map(local.map((m) => [m.name, m]));
  const edited = applied.filter((r) => {
    const file = byName.get(r.migration_name);
    return file !== undefined && !checksumMatches(file.script, r.checksum);
  });
  if (edited.length > 0) {
    throw new MigrationError(
      'checksum-mismatch',
      `migration(s) ${edited.map((r) => r.migration_name).join(', ')} changed after being applied to this ` +
        'database (checksum differs from _prisma_migrations). Applied migrations must not be edited: ' +
        'restore the file and put the change in a new migration.',
    );
  }
  for (const record of applied) {
    if (!byName.has(record.migration_name)) {
      log(`warning: database has migration ${record.migration_name}, which is not in the migrations directory`);
    }
  }

  const appliedNames = new Set(applied.map((r) => r.migration_name));
  const pending = local.filter((m) => !appliedNames.has(m.name));
  for (const migration of pending) {
    await applyOne(client, migration);
    log(`applied migration ${migration.name}`);
  }
  return pending.map((m) => m.name);
}

async function applyOne(client: Client, migration: LocalMigration): Promise<void> {
  await client.query('BEGIN');
  try {
    // One simple-protocol query runs the whole multi-statement script, as Prisma does. A script
    // with its own BEGIN/COMMIT (Prisma writes one for enum changes) commits early; PostgreSQL
    // only warns about the nested BEGIN, and the record below is still written.
    await client.query(migration.script);
    // now() is the transaction start, i.e. when the migration started.
    await client.query(
      `INSERT INTO _prisma_migrations
         (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
       VALUES ($1, $2, clock_timestamp(), $3, NULL, NULL, now(), 1)`,
      [randomUUID(), migration.checksum, migration.name],
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    const detail = err instanceof Error ? err.message : String(err);
    throw new MigrationError(
      'apply-failed',
      `migration ${migration.name} failed and was rolled back (nothing recorded): ${detail}`,
      { cause: err },
    );
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
