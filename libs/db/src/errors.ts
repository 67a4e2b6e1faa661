/**
 * Telling "PostgreSQL is unreachable right now" apart from every other database error, so the
 * API can answer 503 + Retry-After instead of 500 and workers can wait instead of failing.
 *
 * Prisma 7 with @prisma/adapter-pg reports an unreachable server in several shapes (measured
 * with a TCP proxy that refuses or drops connections, test/helpers/tcp-proxy.ts):
 * - PrismaClientKnownRequestError P1001 (DatabaseNotReachable), P1008 (SocketTimeout),
 *   P1017 (ConnectionClosed), P2037 (TooManyConnections) from model queries;
 * - P2010 "Raw query failed" from $queryRaw, with the adapter's error in
 *   `meta.driverAdapterError.cause.kind` (the same kinds as above);
 * - node-postgres' own Error "Connection terminated unexpectedly" (no code at all) when a pooled
 *   connection dies under a query, which the adapter passes through unconverted;
 * - a PostgreSQL error with SQLSTATE class 08 (connection exception) or 57P01-57P03 (the server
 *   shutting down or starting up) when it restarts.
 * Checked by shape, not instanceof: the generated client's classes differ per bundle and realm.
 */

const UNAVAILABLE_PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2037']);
const UNAVAILABLE_ADAPTER_KINDS = new Set([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
]);
const UNAVAILABLE_SQLSTATES = /^(08|57P0[123]$|53300$)/;
const UNAVAILABLE_SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EPIPE',
  'EHOSTUNREACH',
]);
const NODE_POSTGRES_MESSAGES =
  /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect)/;

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  meta?: { driverAdapterError?: { cause?: { kind?: unknown; originalCode?: unknown; code?: unknown } } };
  cause?: unknown;
}

/** True when `error` means PostgreSQL cannot be reached (down, restarting, connections dropped). */
export function isDatabaseUnavailable(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 3) return false;
  const e = error as ErrorShape;
  const code = typeof e.code === 'string' ? e.code : undefined;
  if (code && UNAVAILABLE_PRISMA_CODES.has(code)) return true;
  if (e.name === 'PrismaClientInitializationError') return true;
  const adapterCause = e.meta?.driverAdapterError?.cause;
  if (adapterCause) {
    if (typeof adapterCause.kind === 'string' && UNAVAILABLE_ADAPTER_KINDS.has(adapterCause.kind)) return true;
    const sqlState = adapterCause.originalCode ?? adapterCause.code;
    if (typeof sqlState === 'string' && UNAVAILABLE_SQLSTATES.test(sqlState)) return true;
  }
  if (
    code &&
    (UNAVAILABLE_SOCKET_CODES.has(code) || (/^[0-9A-Z]{5}$/.test(code) && UNAVAILABLE_SQLSTATES.test(code)))
  ) {
    return true;
  }
  if (typeof e.message === 'string' && NODE_POSTGRES_MESSAGES.test(e.message)) return true;
  return isDatabaseUnavailable(e.cause, depth + 1);
}

/**
 * True when a unique index refused the row: P2002 from a model query, or P2010 with SQLSTATE
 * 23505 from a raw one (the adapter's error in `meta.driverAdapterError.cause`).
 */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as ErrorShape;
  if (e.code === 'P2002') return true;
  const cause = e.meta?.driverAdapterError?.cause;
  return e.code === 'P2010' && (cause?.kind === 'UniqueConstraintViolation' || cause?.originalCode === '23505');
}
