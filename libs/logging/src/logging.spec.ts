import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import {
  addLogContext,
  buildIdIn,
  createLogger,
  NestLogger,
  requestLogging,
  runWithLogContext,
  scrubSecrets,
  type Logger as PinoLogger,
} from './index';

type Line = Record<string, any>;

/** A real pino logger writing into an array instead of stdout. */
function capture(level = 'debug'): { logger: PinoLogger; lines: Line[] } {
  const lines: Line[] = [];
  const logger = createLogger({ name: 'test', level, destination: { write: (line) => lines.push(JSON.parse(line)) } });
  return { logger, lines };
}

const BUILD_ID = '3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f';

describe('redaction', () => {
  test('credentials in headers, tokens, secrets and bodies never reach the output', () => {
    const { logger, lines } = capture();
    logger.info(
      {
        req: {
          method: 'POST',
          headers: { authorization: 'Bearer s3cret-admin-token', 'x-gitlab-token': 'glt-s3cret' },
        },
        headers: { Authorization: 'Bearer s3cret-2', 'X-Gitlab-Token': 's3cret-3', cookie: 'sid=s3cret' },
        project: { webhookSecret: 's3cret-hook', forgeToken: 's3cret-forge', name: 'app' },
        token: 's3cret-token',
        body: '{"secret":"payload"}',
      },
      'delivery',
    );
    const text = JSON.stringify(lines);
    expect(text).not.toMatch(/s3cret|payload/);
    expect(lines[0].req).toEqual({
      method: 'POST',
      headers: { authorization: '[redacted]', 'x-gitlab-token': '[redacted]' },
    });
    expect(lines[0].project).toEqual({ webhookSecret: '[redacted]', forgeToken: '[redacted]', name: 'app' });
    expect(lines[0].body).toBe('[redacted]');
  });

  test('bearer tokens and URL passwords inside messages are scrubbed', () => {
    const { logger, lines } = capture();
    logger.warn('redis://farm:hunter2hunter2@10.0.0.5:6379 refused; sent Authorization: Bearer abcdef0123456789');
    expect(lines[0].msg).toBe('redis://farm:[redacted]@10.0.0.5:6379 refused; sent Authorization: Bearer [redacted]');
    // Ordinary prose about tokens stays readable.
    expect(scrubSecrets('missing bearer token (Authorization: Bearer <token>)')).toBe(
      'missing bearer token (Authorization: Bearer <token>)',
    );
  });

  test('lines are JSON with level, time, service and message', () => {
    const { logger, lines } = capture();
    logger.info('hello');
    expect(lines[0]).toMatchObject({ level: 'info', service: 'test', msg: 'hello' });
    expect(Date.parse(lines[0].time)).not.toBeNaN();
  });

  test('LOG_LEVEL silent writes nothing', () => {
    const { logger, lines } = capture('silent');
    logger.error('nothing');
    expect(lines).toEqual([]);
  });
});

describe('log context', () => {
  test('every line written inside a context carries its fields, across awaits', async () => {
    const { logger, lines } = capture();
    await runWithLogContext({ requestId: 'r-1' }, async () => {
      logger.info('first');
      await new Promise((resolve) => setTimeout(resolve, 5));
      addLogContext({ buildId: BUILD_ID });
      await runWithLogContext({ platform: 'linux/arm64' }, async () => logger.info('nested'));
      logger.info('after');
    });
    logger.info('outside');
    // A line's own fields stay on that line.
    await runWithLogContext({ requestId: 'r-2' }, async () => {
      logger.warn({ context: 'HooksService' }, 'own fields');
      logger.info('next');
    });
    expect(lines.map((l) => [l.msg, l.requestId, l.buildId, l.platform])).toEqual([
      ['first', 'r-1', undefined, undefined],
      ['nested', 'r-1', BUILD_ID, 'linux/arm64'],
      ['after', 'r-1', BUILD_ID, undefined],
      ['outside', undefined, undefined, undefined],
      ['own fields', 'r-2', undefined, undefined],
      ['next', 'r-2', undefined, undefined],
    ]);
    expect(lines[5]).not.toHaveProperty('context');
  });
});

describe('NestLogger', () => {
  test('Nest loggers write JSON lines with their context, stack and build id', () => {
    const { logger, lines } = capture();
    const nest = new NestLogger(logger);
    Logger.overrideLogger(nest);
    try {
      const scoped = new Logger('PublishWorker');
      scoped.log(`publish job publish-${BUILD_ID} done`);
      scoped.warn({ msg: 'retrying', buildId: BUILD_ID, attempt: 2 });
      scoped.error('boom', 'Error: boom\n    at somewhere (file.ts:1:1)');
      new Logger('Publisher').error('no stack');
      scoped.debug('just a note');
    } finally {
      Logger.overrideLogger(false);
    }
    expect(lines).toEqual([
      expect.objectContaining({ level: 'info', context: 'PublishWorker', buildId: BUILD_ID }),
      expect.objectContaining({ level: 'warn', msg: 'retrying', buildId: BUILD_ID, attempt: 2 }),
      expect.objectContaining({ level: 'error', msg: 'boom', stack: 'Error: boom\n    at somewhere (file.ts:1:1)' }),
      expect.objectContaining({ level: 'error', msg: 'no stack', context: 'Publisher' }),
      expect.objectContaining({ level: 'debug', msg: 'just a note' }),
    ]);
    expect(lines[3]).not.toHaveProperty('stack');
    expect(lines[4]).not.toHaveProperty('buildId');
  });

  test('build ids are found in the farm’s message shapes and nowhere else', () => {
    expect(buildIdIn(`build ${BUILD_ID} linux/arm64: lost`)).toBe(BUILD_ID);
    expect(buildIdIn(`job build-${BUILD_ID}-linux-amd64 done`)).toBe(BUILD_ID);
    expect(buildIdIn(`commit status for build ${BUILD_ID.toUpperCase()}: 500`)).toBe(BUILD_ID);
    expect(buildIdIn(`project ${BUILD_ID} updated`)).toBeUndefined();
  });
});

describe('requestLogging', () => {
  let server: Server;
  let url: string;
  const { logger, lines } = capture();

  beforeAll(async () => {
    const middleware = requestLogging(logger, {
      contextFrom: (path) => {
        const match = /^\/v1\/builds\/([0-9a-f-]{36})/.exec(path);
        return match ? { buildId: match[1] } : {};
      },
      quietPaths: ['/healthz'],
    });
    server = createServer((request, response) =>
      middleware(request, response, () => {
        // A stream that never ends by itself, like a followed build log.
        if (request.url === '/stream') return void response.writeHead(200).write('data: 1\n\n');
        setTimeout(() => {
          logger.info('handling');
          response.end('ok');
        }, 2);
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  beforeEach(() => lines.splice(0));

  test('a caller’s request id is echoed and carried by every line of its request', async () => {
    const response = await fetch(`${url}/v1/builds/${BUILD_ID}?x=1`, { headers: { 'X-Request-Id': 'ci-run-42' } });
    expect(response.headers.get('x-request-id')).toBe('ci-run-42');
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(lines).toEqual([
      expect.objectContaining({ msg: 'handling', requestId: 'ci-run-42', buildId: BUILD_ID }),
      expect.objectContaining({
        level: 'info',
        msg: `GET /v1/builds/${BUILD_ID} 200`,
        requestId: 'ci-run-42',
        buildId: BUILD_ID,
        method: 'GET',
        url: `/v1/builds/${BUILD_ID}?x=1`,
        status: 200,
        aborted: false,
      }),
    ]);
    expect(lines[1].durationMs).toBeGreaterThan(0);
  });

  test('without a usable id, each request gets a fresh one; probes log at debug', async () => {
    const first = await fetch(`${url}/healthz`, { headers: { 'X-Request-Id': 'bad id", "level":"fatal' } });
    const second = await fetch(`${url}/healthz`);
    const ids = [first.headers.get('x-request-id'), second.headers.get('x-request-id')];
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(ids[1]).toMatch(/^[0-9a-f-]{36}$/);
    expect(ids[0]).not.toBe(ids[1]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(lines.filter((l) => l.msg === 'GET /healthz 200').map((l) => [l.level, l.requestId])).toEqual([
      ['debug', ids[0]],
      ['debug', ids[1]],
    ]);
  });

  test('a client that goes away before the end still gets its line', async () => {
    const abort = new AbortController();
    const response = await fetch(`${url}/stream`, { signal: abort.signal, headers: { 'X-Request-Id': 'follower' } });
    expect(response.status).toBe(200);
    abort.abort();
    const deadline = Date.now() + 5_000;
    while (!lines.some((l) => l.requestId === 'follower') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(lines).toEqual([
      expect.objectContaining({ requestId: 'follower', aborted: true, msg: 'GET /stream 200 (client went away)' }),
    ]);
  });
});
