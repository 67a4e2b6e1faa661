import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { logStreamKey } from '@farm/queue';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * Live logs through the REST API (`GET /v1/builds/{id}/logs?follow=true`, Server-Sent Events)
 * on a real farm: a native amd64 agent and an arm64 agent under declared qemu-user emulation.
 */

jest.setTimeout(240_000);

const PLATFORMS = ['linux/amd64', 'linux/arm64'];
const TICKS = 30;

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;
let redis: Redis;

interface Received {
  event: string;
  data: any;
  id?: string;
  /** When the client read it, in ms since the epoch. */
  at: number;
}

interface Followed {
  status: number;
  contentType: string;
  events: Received[];
  /** The server ended the stream (rather than the client leaving). */
  closedByServer: boolean;
}

/**
 * Follows a build's log as a client would: fetch with the bearer token, SSE parsed by hand.
 * `leaveWhen` is asked after each event; returning true disconnects the client.
 */
async function follow(
  id: string,
  options: {
    platform?: string;
    lastEventId?: string;
    leaveWhen?: (events: Received[]) => boolean | Promise<boolean>;
  } = {},
): Promise<Followed> {
  const query = new URLSearchParams({ follow: 'true', ...(options.platform ? { platform: options.platform } : {}) });
  const headers: Record<string, string> = { authorization: `Bearer ${farm.adminToken}` };
  if (options.lastEventId) headers['last-event-id'] = options.lastEventId;
  const controller = new AbortController();
  const response = await fetch(`${farm.apiUrl}/v1/builds/${id}/logs?${query}`, { headers, signal: controller.signal });
  const result: Followed = {
    status: response.status,
    contentType: response.headers.get('content-type') ?? '',
    events: [],
    closedByServer: false,
  };
  if (!response.body || !result.contentType.startsWith('text/event-stream')) {
    result.events.push({ event: 'body', data: await response.text(), at: Date.now() });
    return result;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      result.closedByServer = true;
      return result;
    }
    const at = Date.now();
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields = new Map<string, string>();
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        fields.set(line.slice(0, colon), line.slice(colon + 2));
      }
      if (!fields.has('data')) continue;
      result.events.push({
        event: fields.get('event') ?? 'message',
        data: JSON.parse(fields.get('data')!),
        id: fields.get('id'),
        at,
      });
      if (await options.leaveWhen?.(result.events)) {
        controller.abort();
        await reader.cancel().catch(() => undefined);
        return result;
      }
    }
  }
}

const lines = (events: Received[]) => events.filter((e) => e.event === 'line');
const tagged = (events: Received[]) => events.map((e) => `[${e.data.platform}] ${e.data.line}`);

/** Each platform's plain-text log (the PostgreSQL archive once the platform ended), tagged like SSE lines. */
async function plainLogs(id: string, platforms = PLATFORMS): Promise<Record<string, string[]>> {
  const logs: Record<string, string[]> = {};
  for (const platform of platforms) {
    const response = await farm.request('GET', `/v1/builds/${id}/logs?platform=${platform}`);
    expect(response.status).toBe(200);
    logs[platform] = (response.body as string)
      .split('\n')
      .slice(0, -1)
      .map((line) => `[${platform}] ${line}`);
  }
  return logs;
}

const perPlatform = (tags: string[], platform: string) => tags.filter((line) => line.startsWith(`[${platform}] `));

async function submit(dockerfile = 'Dockerfile', platforms = PLATFORMS): Promise<string> {
  const response = await farm.request('POST', '/v1/builds', {
    repo: repo.url,
    commit: repo.commit,
    dockerfile,
    platforms,
    tags: [`${registry.host}/logs/app:${randomBytes(4).toString('hex')}`],
    // The same commit is built several times: every build must run its steps to log them.
    noCache: true,
  });
  expect(response.status).toBe(202);
  return response.body.id;
}

/** The api's Redis connections that follow logs, as Redis itself lists them. */
async function followConnections(): Promise<number> {
  const list = (await redis.client('LIST')) as string;
  return list.split('\n').filter((line) => line.includes(` name=${farm.queuePrefix}:api:logs `)).length;
}

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({
    // Long enough (about a second per platform) for a status poll to see each platform running.
    Dockerfile: [
      `FROM ${base}`,
      'RUN echo "hello from $(uname -m)"',
      'RUN for i in $(seq 1 20); do echo "count $i of 20 on $(uname -m)"; sleep 0.05; done',
      '',
    ].join('\n'),
    // Each tick prints the wall clock with microseconds (time.tv_sec, time.tv_usec) right when
    // the build writes it: busybox `date` has no %N, adjtimex reads the same clock (through
    // qemu-user too) and prints at once, with no other process in between.
    'Dockerfile.ticks': [`FROM ${base}`, `RUN for i in $(seq 1 ${TICKS}); do adjtimex; sleep 0.1; done`, ''].join('\n'),
  });
  redis = new Redis('redis://127.0.0.1:6379');
  farm = await startFarm({
    databaseUrl: database.url,
    agents: [{ name: 'native-amd64' }, { platform: 'linux/arm64', emulated: true, name: 'qemu-arm64' }],
  });
});

afterAll(async () => {
  await farm?.stop();
  redis?.disconnect();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove()]);
});

test('following a two-platform build from submission: tagged lines, statuses, the end with the digest', async () => {
  const id = await submit();
  // One client stays to the end; another leaves after a few lines and resumes with Last-Event-ID.
  const [whole, resumed] = await Promise.all([
    follow(id),
    (async () => {
      const first = await follow(id, { leaveWhen: (events) => lines(events).length >= 8 });
      const last = lines(first.events).at(-1)!;
      const rest = await follow(id, { lastEventId: last.id });
      return { first, rest };
    })(),
  ]);
  const build = await farm.waitForBuild(id);
  expect(build.status).toBe('succeeded');

  expect(whole.status).toBe(200);
  expect(whole.contentType).toMatch(/^text\/event-stream/);
  expect(whole.closedByServer).toBe(true);
  const ended = whole.events.at(-1)!;
  expect(ended).toMatchObject({ event: 'end', data: { status: 'succeeded', digest: build.digest } });
  expect(build.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  expect(whole.events.filter((e) => e.event === 'end')).toHaveLength(1);

  // Every line, tagged with its platform, with an id naming the platform and its stream entry.
  const received = lines(whole.events);
  for (const event of received) {
    expect(PLATFORMS).toContain(event.data.platform);
    expect(event.id).toMatch(new RegExp(`^${event.data.platform}\\|\\d+-\\d+$`));
  }
  expect(new Set(received.map((e) => e.id)).size).toBe(received.length);
  const logs = await plainLogs(id);
  for (const platform of PLATFORMS) {
    // The same lines as the archived log, in the same order: nothing lost, nothing twice.
    expect(perPlatform(tagged(received), platform)).toEqual(logs[platform]);
  }
  expect(logs['linux/amd64']).toContain('[linux/amd64] count 20 of 20 on x86_64');
  expect(logs['linux/arm64']).toContain('[linux/arm64] count 20 of 20 on aarch64');

  // Statuses as they changed: each platform running on its agent (emulation declared), then done.
  const statuses = whole.events.filter((e) => e.event === 'status').map((e) => e.data);
  expect(statuses).toContainEqual({
    platform: 'linux/amd64',
    status: 'running',
    agent: 'native-amd64',
    emulated: false,
  });
  expect(statuses).toContainEqual({ platform: 'linux/arm64', status: 'running', agent: 'qemu-arm64', emulated: true });
  for (const platform of PLATFORMS) {
    const mine = statuses.filter((s) => s.platform === platform);
    expect(mine.at(-1)).toMatchObject({ status: 'succeeded' });
    // Only changes are sent.
    mine.slice(1).forEach((s, i) => expect(s).not.toEqual(mine[i]));
  }

  // The client that left and came back with Last-Event-ID saw every line exactly once.
  expect(resumed.first.closedByServer).toBe(false);
  expect(resumed.rest.closedByServer).toBe(true);
  expect([...tagged(lines(resumed.first.events)), ...tagged(lines(resumed.rest.events))]).toEqual(tagged(received));
  expect(resumed.rest.events.at(-1)).toMatchObject({ event: 'end', data: { status: 'succeeded' } });
});

test('after the build: the whole log from Redis, then from the PostgreSQL archive once the stream is gone', async () => {
  const id = await submit();
  const build = await farm.waitForBuild(id);
  expect(build.status).toBe('succeeded');
  const logs = await plainLogs(id);
  const all = [...logs['linux/amd64'], ...logs['linux/arm64']];

  // Without follow: the plain text as before.
  const plain = await fetch(`${farm.apiUrl}/v1/builds/${id}/logs?follow=false`, {
    headers: { authorization: `Bearer ${farm.adminToken}` },
  });
  expect(plain.headers.get('content-type')).toMatch(/^text\/plain/);
  // (all platforms at once leave out blank lines, as before)
  const blank = /^\[[^\]]+\] $/;
  expect((await plain.text()).split('\n').slice(0, -1)).toEqual(all.filter((line) => !blank.test(line)));

  const late = await follow(id);
  expect(late.closedByServer).toBe(true);
  expect(late.events.at(-1)).toMatchObject({ event: 'end', data: { status: 'succeeded', digest: build.digest } });
  for (const platform of PLATFORMS) expect(perPlatform(tagged(lines(late.events)), platform)).toEqual(logs[platform]);
  const statuses = late.events.filter((e) => e.event === 'status').map((e) => e.data);
  expect(statuses).toEqual([
    { platform: 'linux/amd64', status: 'succeeded', agent: 'native-amd64', emulated: false },
    { platform: 'linux/arm64', status: 'succeeded', agent: 'qemu-arm64', emulated: true },
  ]);

  // One platform only: its lines, its status, the build's end.
  const arm = await follow(id, { platform: 'linux/arm64' });
  expect(tagged(lines(arm.events))).toEqual(logs['linux/arm64']);
  expect(arm.events.filter((e) => e.event === 'status').map((e) => e.data.platform)).toEqual(['linux/arm64']);
  expect(arm.events.at(-1)).toMatchObject({ event: 'end', data: { status: 'succeeded' } });

  // Resuming from the middle gives exactly the rest.
  const cut = lines(late.events)[Math.floor(lines(late.events).length / 2)];
  const rest = await follow(id, { lastEventId: cut.id });
  expect(tagged(lines(rest.events))).toEqual(tagged(lines(late.events).slice(lines(late.events).indexOf(cut) + 1)));

  // A week later the Redis streams have expired: the archive serves the same lines.
  await redis.del(...PLATFORMS.map((platform) => logStreamKey(farm.queuePrefix, id, platform)));
  const archived = await follow(id);
  expect(archived.closedByServer).toBe(true);
  expect(archived.events.at(-1)).toMatchObject({ event: 'end', data: { status: 'succeeded', digest: build.digest } });
  expect(tagged(lines(archived.events))).toEqual(all);
  for (const event of lines(archived.events)) expect(event.id).toMatch(new RegExp(`^${event.data.platform}\\|0-\\d+$`));
  const archiveCut = lines(archived.events)[logs['linux/amd64'].length + 2];
  const archiveRest = await follow(id, { lastEventId: archiveCut.id });
  expect(tagged(lines(archiveRest.events))).toEqual(all.slice(logs['linux/amd64'].length + 3));
});

test('errors before the stream starts answer as every other call', async () => {
  const unknown = await follow('00000000-0000-4000-8000-000000000000');
  expect(unknown.status).toBe(404);
  expect(JSON.parse(unknown.events[0].data)).toMatchObject({ error: { code: 'not_found' } });

  const response = await fetch(`${farm.apiUrl}/v1/builds/00000000-0000-4000-8000-000000000000/logs?follow=true`);
  expect(response.status).toBe(401);
  expect(await response.json()).toMatchObject({ error: { code: 'unauthorized' } });

  const id = await submit('Dockerfile', ['linux/amd64']);
  const wrongPlatform = await follow(id, { platform: 'linux/arm64' });
  expect(wrongPlatform.status).toBe(404);
  const badPlatform = await follow(id, { platform: 'linux/x86' });
  expect(badPlatform.status).toBe(400);
  await farm.waitForBuild(id);
});

test('a client that leaves mid-stream releases its Redis connection', async () => {
  const id = await submit('Dockerfile.ticks', ['linux/amd64']);
  // Streams of earlier tests are over, their connections closed a moment later.
  await waitFor(async () => (await followConnections()) === 0, 5_000);
  let started!: () => void;
  const staying = follow(id, {
    leaveWhen: () => {
      started();
      return false;
    },
  });
  await new Promise<void>((resolve) => (started = resolve));

  let whileConnected = -1;
  const left = await follow(id, {
    leaveWhen: async (events) => {
      if (lines(events).length < 3) return false;
      whileConnected = await followConnections();
      return true;
    },
  });
  expect(left.closedByServer).toBe(false);
  expect(whileConnected).toBe(2);
  // The build still runs (ticks for 3 s): only the client that stayed holds a connection.
  await waitFor(async () => (await followConnections()) === 1, 5_000);

  const stayed = await staying;
  expect(stayed.closedByServer).toBe(true);
  expect(stayed.events.at(-1)).toMatchObject({ event: 'end', data: { status: 'succeeded' } });
  // Nothing is left behind once the build's stream ended either.
  await waitFor(async () => (await followConnections()) === 0, 5_000);
});

test('latency from the build writing a line to the client reading it', async () => {
  const id = await submit('Dockerfile.ticks');
  // Both platforms (lines merged in one order), and one platform alone (its stream as it comes).
  const [both, amd64] = await Promise.all([follow(id), follow(id, { platform: 'linux/amd64' })]);
  for (const followed of [both, amd64]) {
    expect(followed.events.at(-1)).toMatchObject({ event: 'end', data: { status: 'succeeded' } });
  }
  const stats = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(1);
    return `p50 ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms`;
  };
  /** Per tick: build -> client, and Redis XADD -> client (the stream id's millisecond, same host clock). */
  const latencies = (events: Received[], platform: string) => {
    const received = lines(events).filter((e) => e.data.platform === platform);
    const build: number[] = [];
    const redis: number[] = [];
    received.forEach((event, i) => {
      const usec = /^\s*time\.tv_usec:\s+(\d+)$/.exec(event.data.line);
      const sec = /^\s*time\.tv_sec:\s+(\d+)$/.exec(received[i - 1]?.data.line ?? '');
      if (!usec || !sec) return;
      build.push(event.at - (Number(sec[1]) * 1000 + Number(usec[1]) / 1000));
      redis.push(event.at - Number(/\|(\d+)-/.exec(event.id!)![1]));
    });
    expect(build).toHaveLength(TICKS);
    return { build, redis };
  };
  const report: string[] = [];
  const all = { build: [] as number[], redis: [] as number[] };
  for (const platform of PLATFORMS) {
    const { build, redis } = latencies(both.events, platform);
    all.build.push(...build);
    all.redis.push(...redis);
    report.push(`${platform}: build -> client ${stats(build)}; Redis XADD -> client ${stats(redis)}`);
  }
  report.push(`both platforms: build -> client ${stats(all.build)}; Redis XADD -> client ${stats(all.redis)}`);
  const alone = latencies(amd64.events, 'linux/amd64');
  report.push(
    `?platform=linux/amd64: build -> client ${stats(alone.build)}; Redis XADD -> client ${stats(alone.redis)}`,
  );
  console.log(`live log latency (${TICKS} ticks per platform, both building at once):\n${report.join('\n')}`);
});
