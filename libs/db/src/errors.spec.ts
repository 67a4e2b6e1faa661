import { isDatabaseUnavailable, isUniqueViolation } from './errors';

// The shapes measured through a TCP proxy that refused or dropped PostgreSQL connections (see errors.ts).
const prismaKnown = (code: string, meta?: unknown) =>
  Object.assign(new Error('prisma'), { name: 'PrismaClientKnownRequestError', code, meta, clientVersion: '7' });
const adapterError = (cause: Record<string, unknown>) => ({ driverAdapterError: { cause } });

describe('isDatabaseUnavailable', () => {
  it.each([
    ['P1001 from a model query', prismaKnown('P1001', adapterError({ kind: 'DatabaseNotReachable' }))],
    ['P1017 server closed the connection', prismaKnown('P1017')],
    ['P2024 pool timeout', prismaKnown('P2024')],
    [
      'P2010 raw query, adapter says not reachable',
      prismaKnown('P2010', adapterError({ kind: 'DatabaseNotReachable' })),
    ],
    [
      'P2010 raw query, server shutting down',
      prismaKnown('P2010', adapterError({ kind: 'postgres', originalCode: '57P01' })),
    ],
    [
      'node-postgres dropping a pooled connection',
      Object.assign(new Error('Connection terminated unexpectedly'), { clientVersion: '7' }),
    ],
    [
      'a refused socket',
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED', syscall: 'connect' }),
    ],
    [
      'a PostgreSQL error of class 08',
      Object.assign(new Error('connection failure'), { code: '08006', severity: 'FATAL' }),
    ],
    [
      'an initialization error',
      Object.assign(new Error('cannot connect'), { name: 'PrismaClientInitializationError' }),
    ],
    ['wrapped as a cause', new Error('outer', { cause: prismaKnown('P1001') })],
  ])('%s: unavailable', (_, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it.each([
    ['a unique violation', prismaKnown('P2002')],
    ['a raw query syntax error', prismaKnown('P2010', adapterError({ kind: 'postgres', originalCode: '42601' }))],
    ['a PostgreSQL constraint error', Object.assign(new Error('violates'), { code: '23505', severity: 'ERROR' })],
    ['a plain bug', new TypeError('x is undefined')],
    ['not an error', 'P1001'],
    ['null', null],
  ])('%s: not unavailable', (_, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});

describe('isUniqueViolation', () => {
  it.each([
    ['P2002 from a model query', prismaKnown('P2002')],
    [
      'P2010 from a raw query, as the adapter reports it',
      prismaKnown('P2010', adapterError({ kind: 'UniqueConstraintViolation', originalCode: '23505' })),
    ],
    ['P2010 with only the SQLSTATE', prismaKnown('P2010', adapterError({ kind: 'postgres', originalCode: '23505' }))],
  ])('%s: a unique violation', (_, error) => {
    expect(isUniqueViolation(error)).toBe(true);
  });

  it.each([
    ['a raw query syntax error', prismaKnown('P2010', adapterError({ kind: 'postgres', originalCode: '42601' }))],
    ['a foreign key violation', prismaKnown('P2003')],
    ['an unreachable database', prismaKnown('P1001', adapterError({ kind: 'DatabaseNotReachable' }))],
    ['null', null],
  ])('%s: not a unique violation', (_, error) => {
    expect(isUniqueViolation(error)).toBe(false);
  });
});
