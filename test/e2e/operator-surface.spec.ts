import { randomUUID } from 'node:crypto';
import { getMetadataStorage } from 'class-validator';
import { Client } from 'pg';
import { CreateBuildDto } from '../../apps/api/src/builds/create-build.dto';
import { CreateProjectDto } from '../../apps/api/src/projects/project.dto';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { fixture, forgeHeaders } from '../helpers/webhooks';

/**
 * The operator surface of a running farm, over HTTP: the OpenAPI document at /docs, the
 * Prometheus metrics at /metrics after a real two-platform build, and the api's JSON logs
 * with request and build correlation ids (read from the processes' real output).
 */

jest.setTimeout(240_000);

const SECRET = 'operator-surface-webhook-secret';

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;
let projectId: string;
/** The build every metrics and log test looks at: linux/amd64 natively, linux/arm64 emulated. */
let build: any;

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({ Dockerfile: `FROM ${base}\nRUN uname -m > /arch\n` });
  farm = await startFarm({
    databaseUrl: database.url,
    agents: [{ name: 'native-amd64' }, { platform: 'linux/arm64', emulated: true, name: 'qemu-arm64' }],
  });
  const project = await farm.request('POST', '/v1/projects', {
    name: 'ops',
    repo: repo.url,
    image: `${registry.host}/ops/app`,
    platforms: ['linux/amd64'],
    tags: ['{branch}'],
    webhookSecret: SECRET,
  });
  expect(project.status).toBe(201);
  projectId = project.body.id;
  const submitted = await farm.request('POST', '/v1/builds', {
    repo: repo.url,
    ref: 'main',
    platforms: ['linux/amd64', 'linux/arm64'],
    tags: [`${registry.host}/ops/app:1.0`],
  });
  expect(submitted.status).toBe(202);
  build = await farm.waitForBuild(submitted.body.id);
  expect(build.status).toBe('succeeded');
});

afterAll(async () => {
  await farm?.stop();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove()]);
});

describe('OpenAPI at /docs', () => {
  let document: any;

  beforeAll(async () => {
    const response = await fetch(`${farm.apiUrl}/docs/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    document = await response.json();
  });

  test('POST /v1/builds takes the CreateBuildDto body, with bearer auth', () => {
    const create = document.paths['/v1/builds'].post;
    const ref = create.requestBody.content['application/json'].schema.$ref;
    expect(ref).toBe('#/components/schemas/CreateBuildDto');
    const schema = document.components.schemas.CreateBuildDto;
    // repo is required unless contextDigest (an uploaded context) replaces it: checked at validation.
    expect(schema.required).toEqual(expect.arrayContaining(['platforms', 'tags']));
    expect(schema.properties.repo).toMatchObject({ type: 'string' });
    expect(schema.properties.contextDigest).toMatchObject({ type: 'string' });
    expect(schema.required).not.toContain('requires');
    expect(schema.properties.platforms).toMatchObject({ type: 'array', items: { type: 'string' }, minItems: 1 });
    expect(schema.properties.tags).toMatchObject({ type: 'array', items: { type: 'string' } });
    expect(schema.properties.requires).toMatchObject({ type: 'array', maxItems: 5 });
    expect(schema.properties.scheduleTimeout).toMatchObject({ type: 'integer', maximum: 86400 });
    expect(create.responses['202']).toBeDefined();
    expect(create.responses.default.content['application/json'].schema.$ref).toBe(
      '#/components/schemas/ApiErrorResponse',
    );
    expect(create.security).toEqual([{ bearer: [] }]);
    expect(document.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  test('the documented bodies are exactly what the validators accept', () => {
    // A field validated but undocumented (or documented but refused) fails here.
    for (const dto of [CreateBuildDto, CreateProjectDto]) {
      const validated = new Set(
        getMetadataStorage()
          .getTargetValidationMetadatas(dto, '', true, false)
          .map((rule) => rule.propertyName),
      );
      expect(Object.keys(document.components.schemas[dto.name].properties).sort()).toEqual([...validated].sort());
    }
  });

  test('projects, hooks, agents, builds and the probes are listed; only guarded routes need the token', () => {
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining([
        '/v1/builds',
        '/v1/builds/{id}',
        '/v1/builds/{id}/logs',
        '/v1/projects',
        '/v1/projects/{id}',
        '/v1/projects/{id}/deliveries',
        '/v1/projects/{id}/hooks/{forge}',
        '/v1/agents',
        '/v1/agents/{id}/drain',
        '/healthz',
        '/readyz',
        '/metrics',
      ]),
    );
    expect(document.paths['/v1/projects'].post.requestBody.content['application/json'].schema.$ref).toBe(
      '#/components/schemas/CreateProjectDto',
    );
    // PATCH takes the same fields, all optional.
    const update = document.paths['/v1/projects/{id}'].patch.requestBody.content['application/json'].schema.$ref;
    const updateSchema = document.components.schemas[update.split('/').pop()];
    expect(Object.keys(updateSchema.properties)).toContain('webhookSecret');
    expect(updateSchema.required ?? []).toEqual([]);
    expect(document.paths['/v1/agents'].get.security).toEqual([{ bearer: [] }]);
    expect(document.paths['/v1/projects/{id}/hooks/{forge}'].post.security).toBeUndefined();
    expect(document.paths['/healthz'].get.security).toBeUndefined();
    expect(document.paths['/metrics'].get.security).toBeUndefined();
    const listQuery = document.paths['/v1/builds'].get.parameters;
    expect(listQuery).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          name: 'status',
          in: 'query',
          schema: expect.objectContaining({ enum: ['queued', 'running', 'succeeded', 'failed', 'canceled'] }),
        }),
      ]),
    );
  });

  test('Swagger UI is served at /docs without a token', async () => {
    const page = await fetch(`${farm.apiUrl}/docs`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('swagger-ui');
    const init = await fetch(`${farm.apiUrl}/docs/swagger-ui-init.js`);
    expect(init.status).toBe(200);
    expect(await init.text()).toContain('/v1/builds');
  });
});

/** `name{labels} value` lines of the Prometheus text format. */
function parseMetrics(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = value;
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

async function scrape() {
  const response = await fetch(`${farm.apiUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  const samples = parseMetrics(await response.text());
  /** The value of the one sample with exactly these labels (undefined: no such series). */
  const value = (name: string, labels: Record<string, string> = {}) =>
    samples.find(
      (s) =>
        s.name === name &&
        Object.keys(s.labels).length === Object.keys(labels).length &&
        Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    )?.value;
  /** Cumulative buckets of one histogram series, by `le`. */
  const buckets = (name: string, labels: Record<string, string> = {}) =>
    Object.fromEntries(
      samples
        .filter((s) => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .map((s) => [s.labels.le, s.value]),
    );
  return { samples, value, buckets };
}

const seconds = (from: string, to: string) => (Date.parse(to) - Date.parse(from)) / 1000;

async function sql(text: string, values: unknown[] = []) {
  const client = new Client({ connectionString: database.url });
  await client.connect();
  try {
    return (await client.query(text, values)).rows;
  } finally {
    await client.end();
  }
}

describe('Prometheus /metrics', () => {
  test('after a real build: builds, platform durations, queue waits and publish latency from the database', async () => {
    const { value, buckets } = await scrape();
    const counts = await sql('SELECT status::text, count(*)::int AS n FROM "Build" GROUP BY status');
    for (const status of ['queued', 'running', 'succeeded', 'failed', 'canceled']) {
      expect(value('buildfarm_builds', { status })).toBe(counts.find((row) => row.status === status)?.n ?? 0);
    }
    expect(value('buildfarm_builds', { status: 'succeeded' })).toBeGreaterThanOrEqual(1);

    const ended = await sql(
      `SELECT p.platform, p.status::text, p."startedAt", p."finishedAt", b."createdAt"
       FROM "PlatformBuild" p JOIN "Build" b ON b.id = p."buildId" WHERE p."startedAt" IS NOT NULL`,
    );
    for (const platform of ['linux/amd64', 'linux/arm64']) {
      const rows = ended.filter((row) => row.platform === platform && row.status === 'succeeded');
      const labels = { platform, status: 'succeeded' };
      expect(value('buildfarm_platform_builds', labels)).toBe(rows.length);
      expect(value('buildfarm_build_duration_seconds_count', labels)).toBe(rows.length);
      expect(value('buildfarm_build_duration_seconds_sum', labels)).toBeCloseTo(
        rows.reduce((sum, row) => sum + (row.finishedAt - row.startedAt) / 1000, 0),
        3,
      );
      const duration = buckets('buildfarm_build_duration_seconds', labels);
      expect(duration['+Inf']).toBe(rows.length);
      const les = Object.keys(duration).filter((le) => le !== '+Inf');
      les.forEach((le, i) => i > 0 && expect(duration[le]).toBeGreaterThanOrEqual(duration[les[i - 1]]));

      const waits = ended.filter((row) => row.platform === platform);
      expect(value('buildfarm_queue_wait_seconds_count', { platform })).toBe(waits.length);
      expect(value('buildfarm_queue_wait_seconds_sum', { platform })).toBeCloseTo(
        waits.reduce((sum, row) => sum + (row.startedAt - row.createdAt) / 1000, 0),
        3,
      );
    }
    // This build's own numbers are in there.
    const [amd64] = build.platforms;
    expect(value('buildfarm_build_duration_seconds_sum', { platform: 'linux/amd64', status: 'succeeded' })).toBeCloseTo(
      seconds(amd64.startedAt, amd64.finishedAt),
      3,
    );
    const lastPlatformEnd = build.platforms.map((p: any) => p.finishedAt).sort()[1];
    expect(value('buildfarm_publish_latency_seconds_count')).toBe(1);
    expect(value('buildfarm_publish_latency_seconds_sum')).toBeCloseTo(seconds(lastPlatformEnd, build.finishedAt), 3);
    expect(buckets('buildfarm_publish_latency_seconds')['+Inf']).toBe(1);
  });

  test('bucket bounds count values equal to them, as Prometheus does', async () => {
    // A finished build written straight into the database, on a platform nothing else uses:
    // queued 1 s exactly, built in 5 s exactly, published 0.25 s after its platform ended.
    const id = randomUUID();
    const created = new Date('2030-01-01T00:00:00.000Z');
    const at = (ms: number) => new Date(created.getTime() + ms);
    const before = await scrape();
    await sql(
      `INSERT INTO "Build" (id, status, repo, commit, dockerfile, context, tags, "createdAt", "startedAt",
                            "finishedAt", "enqueuedAt", requires)
       VALUES ($1, 'succeeded', 'file:///x', $2, 'Dockerfile', '.', '{}', $3, $4, $5, $3, '{}')`,
      [id, 'a'.repeat(40), created, at(1000), at(6250)],
    );
    await sql(
      `INSERT INTO "PlatformBuild" ("buildId", platform, position, status, "startedAt", "finishedAt")
       VALUES ($1, 'linux/s390x', 0, 'succeeded', $2, $3)`,
      [id, at(1000), at(6000)],
    );
    const { value, buckets } = await scrape();
    const duration = buckets('buildfarm_build_duration_seconds', { platform: 'linux/s390x', status: 'succeeded' });
    expect(duration).toMatchObject({ '2': 0, '5': 1, '10': 1, '+Inf': 1 });
    expect(value('buildfarm_build_duration_seconds_sum', { platform: 'linux/s390x', status: 'succeeded' })).toBe(5);
    expect(buckets('buildfarm_queue_wait_seconds', { platform: 'linux/s390x' })).toMatchObject({
      '0.5': 0,
      '1': 1,
      '+Inf': 1,
    });
    const latencyBefore = before.buckets('buildfarm_publish_latency_seconds');
    const latency = buckets('buildfarm_publish_latency_seconds');
    expect(latency['0.1'] - latencyBefore['0.1']).toBe(0);
    expect(latency['0.25'] - latencyBefore['0.25']).toBe(1);
    expect(value('buildfarm_publish_latency_seconds_count')).toBe(
      before.value('buildfarm_publish_latency_seconds_count')! + 1,
    );
    expect(value('buildfarm_builds', { status: 'succeeded' })).toBe(
      before.value('buildfarm_builds', { status: 'succeeded' })! + 1,
    );
  });

  test('agents online and queue depth per platform, from heartbeats and BullMQ', async () => {
    let metrics = await scrape();
    for (const platform of ['linux/amd64', 'linux/arm64']) {
      expect(metrics.value('buildfarm_agents', { platform, status: 'online' })).toBe(1);
      expect(metrics.value('buildfarm_agents', { platform, status: 'offline' })).toBe(0);
      const queue = `build.${platform.replace('/', '.')}`;
      for (const state of ['waiting', 'delayed', 'active']) {
        expect(metrics.value('buildfarm_queue_depth', { platform, queue, state })).toBe(0);
      }
    }
    // Nothing serves linux/ppc64le: its platform waits in its queue, unschedulable.
    const stuck = await farm.request('POST', '/v1/builds', {
      repo: repo.url,
      ref: 'main',
      platforms: ['linux/ppc64le'],
      tags: [`${registry.host}/ops/stuck:1`],
    });
    expect(stuck.status).toBe(202);
    await waitFor(
      async () => {
        metrics = await scrape();
        return metrics.value('buildfarm_platform_builds', { platform: 'linux/ppc64le', status: 'unschedulable' }) === 1;
      },
      30_000,
      () => farm.output().slice(-3000),
    );
    const queue = { platform: 'linux/ppc64le', queue: 'build.linux.ppc64le' };
    expect(metrics.value('buildfarm_queue_depth', { ...queue, state: 'waiting' })).toBe(1);
    expect(metrics.value('buildfarm_queue_depth', { ...queue, state: 'active' })).toBe(0);
    expect(metrics.value('buildfarm_agents', { platform: 'linux/ppc64le', status: 'online' })).toBeUndefined();
    expect(metrics.value('buildfarm_builds', { status: 'queued' })).toBeGreaterThanOrEqual(1);
  });

  test('webhook deliveries by outcome, refused signatures included', async () => {
    const before = await scrape();
    const deliver = (headers: Record<string, string>, body: Buffer) =>
      fetch(`${farm.apiUrl}/v1/projects/${projectId}/hooks/github`, { method: 'POST', headers, body });
    const ping = fixture('github/ping.json');
    expect((await deliver(forgeHeaders('github', 'ping', ping, SECRET), ping)).status).toBe(200);
    expect((await deliver(forgeHeaders('github', 'ping', ping, 'not-the-secret-at-all'), ping)).status).toBe(401);
    const { value, samples } = await scrape();
    const outcome = (o: string, metrics = { value }) =>
      metrics.value('buildfarm_webhook_deliveries_total', { outcome: o }) ?? 0;
    expect(outcome('ping')).toBe(outcome('ping', before) + 1);
    expect(outcome('rejected')).toBe(outcome('rejected', before) + 1);
    // And the process's own metrics.
    expect(samples.some((s) => s.name === 'process_cpu_user_seconds_total')).toBe(true);
  });

  test('is public, like the probes', async () => {
    expect((await fetch(`${farm.apiUrl}/metrics`, { headers: { authorization: 'Bearer nonsense' } })).status).toBe(200);
  });
});

/**
 * The JSON lines one process wrote. startFarm prefixes each line with `[name] ` (a chunk that
 * ended with a newline leaves a dangling prefix in front of whatever comes next: the last
 * prefix is the writer).
 */
function jsonLines(process: string): any[] {
  const lines = [];
  for (const line of farm.output().split('\n')) {
    const match = /^(?:\[[^\]]+\] )*\[([^\]]+)\] (.*)$/.exec(line);
    if (match?.[1] === process && match[2]) lines.push(JSON.parse(match[2]));
  }
  return lines;
}

describe('structured logs', () => {
  test('every line of every process is JSON with level, time and service', () => {
    for (const [process, service] of [
      ['api', 'api'],
      ['coordinator', 'coordinator'],
      ['agent native-amd64', 'agent'],
    ]) {
      const lines = jsonLines(process);
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines)
        expect(line).toMatchObject({ service, level: expect.any(String), time: expect.any(String) });
    }
  });

  test('a request’s id is answered and carried by every line logged while handling it', async () => {
    const requestId = `e2e-${randomUUID()}`;
    const body = fixture('github/ping.json');
    const refused = await fetch(`${farm.apiUrl}/v1/projects/${projectId}/hooks/github`, {
      method: 'POST',
      headers: { ...forgeHeaders('github', 'ping', body, 'a-wrong-secret-for-sure'), 'x-request-id': requestId },
      body,
    });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('x-request-id')).toBe(requestId);
    let lines: any[] = [];
    await waitFor(
      async () => {
        lines = jsonLines('api').filter((line) => line.requestId === requestId);
        return lines.length >= 2;
      },
      10_000,
      () => farm.output().slice(-3000),
    );
    // The service's warning and the request's own line, both with the id.
    expect(lines).toEqual([
      expect.objectContaining({ level: 'warn', context: 'HooksService', msg: expect.stringContaining('refused') }),
      expect.objectContaining({
        level: 'info',
        msg: `POST /v1/projects/${projectId}/hooks/github 401`,
        status: 401,
        method: 'POST',
      }),
    ]);
    // No other request's line claims it, and every refusal line names its own request.
    for (const line of jsonLines('api').filter((l) => String(l.msg).includes('refused a github delivery'))) {
      expect(line.requestId).toEqual(expect.any(String));
    }

    // Without an id of its own, a request gets a fresh one.
    const plain = await fetch(`${farm.apiUrl}/healthz`);
    expect(plain.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('lines about a build carry its id', async () => {
    const requestId = `e2e-${randomUUID()}`;
    const shown = await fetch(`${farm.apiUrl}/v1/builds/${build.id}`, {
      headers: { authorization: `Bearer ${farm.adminToken}`, 'x-request-id': requestId },
    });
    expect(shown.status).toBe(200);
    await waitFor(
      async () => jsonLines('api').some((line) => line.requestId === requestId),
      10_000,
      () => farm.output().slice(-3000),
    );
    expect(jsonLines('api').find((line) => line.requestId === requestId)).toMatchObject({
      buildId: build.id,
      msg: `GET /v1/builds/${build.id} 200`,
    });
    // The agents' job lines too.
    const agentLines = jsonLines('agent native-amd64').filter((line) => line.buildId === build.id);
    expect(agentLines.map((line) => line.msg)).toEqual(expect.arrayContaining([expect.stringMatching(/done$/)]));
  });

  test('no secret reaches the logs', () => {
    const output = farm.output();
    expect(output).not.toContain(farm.adminToken);
    expect(output).not.toContain(SECRET);
  });
});
