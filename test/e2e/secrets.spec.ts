import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { startSshd, type TestSshd } from '../helpers/sshd';
import { fixture, forgeHeaders, startForgeApi } from '../helpers/webhooks';

/**
 * Secrets never leak (issue 5): known secret strings are planted — the admin token, a
 * project's webhook secret and forge token, the registry's password, FARM_SECRETS_KEY, the SSH
 * pool's private key and a build secret — then builds (succeeding, failing, over SSH) and
 * webhook deliveries (accepted and refused) run, and every place a secret could end up is
 * searched: every farm process's output, every Redis value under the farm's prefix (job
 * payloads, streams, hashes), every table of the database, every API response (build logs
 * included), and the published image's manifest, config (history) and layers.
 */

jest.setTimeout(300_000);
const run = promisify(execFile);

const tagged = (name: string) => `${name}-${randomBytes(12).toString('hex')}`;
const BUILD_SECRET = tagged('build-secret');
const HOOK_SECRET = tagged('hook-secret');
const FORGE_TOKEN = tagged('forge-token');
const SECRETS_KEY = randomBytes(32).toString('hex');

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;
let sshd: TestSshd;
let forgeApi: Awaited<ReturnType<typeof startForgeApi>>;
let keyDir: string;
/** Every API answer, as text (the one answer that hands out a new token's secret aside). */
const responses: string[] = [];

async function request(method: string, path: string, body?: unknown, token?: string | null) {
  const answer = await farm.request(method, path, body, token);
  responses.push(`${method} ${path} -> ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer;
}

/** The secrets this test plants, by name, each with its encodings a leak could take. */
function planted(): Record<string, string[]> {
  const password = registry.credentials!.password;
  const sshKeyLines = sshd.clientKey
    .toString()
    .split('\n')
    .filter((line) => line.length > 20 && !line.startsWith('-----'));
  return {
    'admin token': [farm.adminToken],
    'webhook secret': [HOOK_SECRET],
    'forge token': [FORGE_TOKEN],
    'registry password': [password, Buffer.from(`${registry.credentials!.username}:${password}`).toString('base64')],
    FARM_SECRETS_KEY: [SECRETS_KEY, Buffer.from(SECRETS_KEY, 'hex').toString('base64')],
    'SSH private key': sshKeyLines,
    'build secret': [BUILD_SECRET, Buffer.from(BUILD_SECRET).toString('base64')],
  };
}

beforeAll(async () => {
  [registry, database, sshd, forgeApi] = await Promise.all([
    startRegistry({ auth: 'basic' }),
    createTestDatabase(),
    startSshd(),
    startForgeApi(),
  ]);
  const base = await pushBusyboxBase(registry.host, registry.credentials);
  const registryForHost = await sshd.reach(Number(registry.host.split(':')[1]));
  const sshBase = base.replace(registry.host, registryForHost);
  const digest = createHash('sha256').update(BUILD_SECRET).digest('hex');
  // The RUN proves it read the secret (by its hash: the Dockerfile lands in the image history).
  const uses = (from: string) =>
    `FROM ${from}\nRUN --mount=type=secret,id=NPM_TOKEN echo "${digest}  /run/secrets/NPM_TOKEN" | sha256sum -c - && echo ok > /checked\n`;
  repo = await createGitRepo({
    Dockerfile: uses(base),
    'Dockerfile.ssh': uses(sshBase),
    // Prints the secret, then fails: the log and the error must show it masked.
    'Dockerfile.leaky': `FROM ${base}\nRUN --mount=type=secret,id=NPM_TOKEN cat /run/secrets/NPM_TOKEN && exit 3\n`,
  });
  keyDir = await mkdtemp(join(tmpdir(), 'farm-secrets-e2e-'));
  await writeFile(join(keyDir, 'id'), sshd.clientKey, { mode: 0o600 });
  await writeFile(join(keyDir, 'known_hosts'), `${sshd.knownHostsLine}\n`);
  const registryAuth = {
    ...registry.dockerConfig.auths,
    [registryForHost]: registry.dockerConfig.auths[registry.host]!,
  };
  farm = await startFarm({
    databaseUrl: database.url,
    agents: [{ name: 'local-amd64', labels: ['local'] }],
    env: {
      FARM_SECRETS_KEY: SECRETS_KEY,
      FARM_REGISTRY_AUTH: JSON.stringify({ auths: registryAuth }),
      LOG_LEVEL: 'debug',
    },
  });
  await farm.startAgent({
    name: 'ssh-pool',
    labels: ['ssh'],
    args: ['--ssh', sshd.url, '--ssh-key', join(keyDir, 'id'), '--ssh-known-hosts', join(keyDir, 'known_hosts')],
    env: { FARM_INSECURE_REGISTRIES: registryForHost, FARM_SSH_STATE_DIR: join(keyDir, 'remote') },
  });
});

afterAll(async () => {
  await farm?.stop();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove(), sshd?.stop(), forgeApi?.stop()]);
  if (keyDir) await rm(keyDir, { recursive: true, force: true });
});

async function build(dockerfile: string, extra: Record<string, unknown> = {}) {
  const tag = `${registry.host}/secrets/app:${randomBytes(4).toString('hex')}`;
  const created = await request('POST', '/v1/builds', {
    repo: repo.url,
    commit: repo.commit,
    dockerfile,
    platforms: ['linux/amd64'],
    tags: [tag],
    secrets: { NPM_TOKEN: BUILD_SECRET },
    ...extra,
  });
  expect(created.status).toBe(202);
  const done = await farm.waitForBuild(created.body.id);
  responses.push(JSON.stringify(done));
  const logs = await request('GET', `/v1/builds/${done.id}/logs`);
  return { done, tag, logs: String(logs.body) };
}

/** Every value under the farm's Redis prefix, whatever its type. */
async function redisValues(): Promise<string> {
  const redis = new Redis('redis://127.0.0.1:6379');
  const out: string[] = [];
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${farm.queuePrefix}:*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const type = await redis.type(key);
        const value =
          type === 'string'
            ? await redis.get(key)
            : type === 'hash'
              ? await redis.hgetall(key)
              : type === 'list'
                ? await redis.lrange(key, 0, -1)
                : type === 'set'
                  ? await redis.smembers(key)
                  : type === 'zset'
                    ? await redis.zrange(key, '0', '-1')
                    : type === 'stream'
                      ? await redis.xrange(key, '-', '+')
                      : `(${type})`;
        out.push(`${key} ${JSON.stringify(value)}`);
      }
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return out.join('\n');
}

/** Every row of every table, as JSON; the project's own webhook secret and forge token aside. */
async function databaseRows(): Promise<string> {
  const client = new Client({ connectionString: database.url });
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ name: string }>(
      `SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'`,
    );
    const out: string[] = [];
    for (const { name } of tables) {
      const { rows } = await client.query(`SELECT row_to_json(t)::text AS row FROM "${name}" t`);
      for (const { row } of rows) {
        const parsed = JSON.parse(row);
        // The api needs these two to verify deliveries and report statuses (stored, never shown).
        if (name === 'Project') {
          delete parsed.webhookSecret;
          delete parsed.forgeToken;
        }
        out.push(`${name} ${JSON.stringify(parsed)}`);
      }
    }
    return out.join('\n');
  } finally {
    await client.end();
  }
}

/** The image as a registry client sees it: manifests, config (with its history) and every layer's files. */
async function imageContents(tag: string): Promise<string> {
  const [host, rest] = [tag.slice(0, tag.indexOf('/')), tag.slice(tag.indexOf('/') + 1)];
  const [repository, reference] = rest.split(':') as [string, string];
  const auth = `Basic ${Buffer.from(`${registry.credentials!.username}:${registry.credentials!.password}`).toString('base64')}`;
  const get = async (path: string, accept?: string) => {
    const response = await fetch(`http://${host}/v2/${repository}/${path}`, {
      headers: { authorization: auth, ...(accept ? { accept } : {}) },
    });
    expect(response.status).toBe(200);
    return Buffer.from(await response.arrayBuffer());
  };
  const accept = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json';
  const index = JSON.parse((await get(`manifests/${reference}`, accept)).toString());
  const parts: string[] = [JSON.stringify(index)];
  for (const entry of index.manifests ?? [{ digest: reference }]) {
    const manifest = JSON.parse((await get(`manifests/${entry.digest}`, accept)).toString());
    parts.push(JSON.stringify(manifest), (await get(`blobs/${manifest.config.digest}`)).toString());
    for (const layer of manifest.layers) {
      const dir = await mkdtemp(join(tmpdir(), 'farm-secret-layer-'));
      try {
        await writeFile(join(dir, 'layer.tgz'), await get(`blobs/${layer.digest}`));
        // Every file's content, as tar writes it (names and data).
        const { stdout } = await run('tar', ['-xzOf', join(dir, 'layer.tgz')], { maxBuffer: 256 * 1024 * 1024 });
        parts.push(stdout);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
  return parts.join('\n');
}

test('planted secrets appear in no log, Redis value, table, API response or image', async () => {
  // A project whose pushes report commit statuses to a (local) forge with its token.
  const project = await request('POST', '/v1/projects', {
    name: 'secretive',
    repo: repo.url,
    image: `${registry.host}/secrets/hooked`,
    platforms: ['linux/amd64'],
    tags: ['{branch}'],
    webhookSecret: HOOK_SECRET,
    forge: 'gitea',
    forgeApiUrl: forgeApi.url,
    forgeRepository: 'team/app',
    forgeToken: FORGE_TOKEN,
  });
  expect(project.status).toBe(201);
  const hook = `/v1/projects/${project.body.id}/hooks`;
  const deliver = async (forge: 'gitea' | 'gitlab', body: Buffer, headers: Record<string, string>) => {
    const response = await fetch(`${farm.apiUrl}${hook}/${forge}`, { method: 'POST', headers, body });
    responses.push(`hook ${forge} -> ${response.status} ${await response.text()}`);
    return response.status;
  };
  const push = JSON.parse(fixture('gitea/push.json').toString());
  push.after = repo.commit;
  push.ref = 'refs/heads/main';
  const pushBody = Buffer.from(JSON.stringify(push));
  expect(await deliver('gitea', pushBody, forgeHeaders('gitea', 'push', pushBody, HOOK_SECRET))).toBe(202);
  // Refused deliveries: a near miss of the secret, and a body signed with another one.
  const nearMiss = forgeHeaders('gitlab', 'Push Hook', pushBody, `${HOOK_SECRET}x`);
  expect(await deliver('gitlab', pushBody, nearMiss)).toBe(401);
  const forged = forgeHeaders('gitea', 'push', pushBody, 'another-secret-0123456789');
  expect(await deliver('gitea', pushBody, forged)).toBe(401);

  // Requests with wrong tokens.
  expect((await request('GET', '/v1/builds', undefined, `${farm.adminToken}x`)).status).toBe(401);
  expect((await request('GET', '/v1/builds', undefined, farm.adminToken.slice(0, -1))).status).toBe(401);

  const local = await build('Dockerfile', { requires: ['local'] });
  expect(local.done).toMatchObject({ status: 'succeeded' });
  const overSsh = await build('Dockerfile.ssh', { requires: ['ssh'] });
  // The secret reached the RUN on the SSH host (the push that follows is not what this test is about).
  expect(overSsh.done.platforms[0].agent).toBe('ssh-pool');
  expect(overSsh.logs).toContain('/run/secrets/NPM_TOKEN: OK');
  const leaky = await build('Dockerfile.leaky', { requires: ['local'] });
  expect(leaky.done.status).toBe('failed');
  // The Dockerfile printed the secret: the log shows it masked (proof the masking had work to do).
  expect(leaky.logs).toContain('***');
  const missingRef = await request('POST', '/v1/builds', {
    repo: repo.url,
    ref: 'no-such-branch',
    platforms: ['linux/amd64'],
    tags: [`${registry.host}/secrets/app:missing`],
    secrets: { NPM_TOKEN: BUILD_SECRET },
  });
  expect(missingRef.status).toBe(422);
  const badSecret = await request('POST', '/v1/builds', {
    repo: repo.url,
    commit: repo.commit,
    platforms: ['linux/amd64'],
    tags: [`${registry.host}/secrets/app:bad`],
    secrets: { 'bad id': BUILD_SECRET, NPM_TOKEN: 42 },
  });
  expect(badSecret.status).toBe(400);
  for (const id of [local.done.id, overSsh.done.id, leaky.done.id]) await request('GET', `/v1/builds/${id}`);
  await request('GET', '/v1/builds');
  await request('GET', `/v1/projects/${project.body.id}`);
  await request('GET', `/v1/projects/${project.body.id}/deliveries`);
  const hooked = (await request('GET', `/v1/projects/${project.body.id}/deliveries`)).body.deliveries.find(
    (d: any) => d.buildId,
  );
  await farm.waitForBuild(hooked.buildId);

  const places: Record<string, string> = {
    'process output': farm.output(),
    'Redis values': await redisValues(),
    'database rows': await databaseRows(),
    'API responses': responses.join('\n'),
    'forge status requests': JSON.stringify(forgeApi.requests.map((r) => r.body)),
    'published image (local)': await imageContents(local.tag),
  };
  // The search looks where the secrets went through: it finds what it must find.
  expect(places['process output']).toContain(local.done.id);
  // Job payloads carry the sealed secrets (JSON inside the job hash, hence the escaping).
  expect(places['Redis values']).toMatch(/secrets[\\"]+:[\\"]+v1\./);
  expect(places['database rows']).toContain(local.done.id);
  expect(places['published image (local)']).toContain('--mount=type=secret,id=NPM_TOKEN');
  expect(places['published image (local)']).toContain('ok');

  const leaks: string[] = [];
  for (const [secret, forms] of Object.entries(planted())) {
    for (const [place, text] of Object.entries(places)) {
      if (forms.some((form) => text.includes(form))) leaks.push(`${secret} in ${place}`);
    }
  }
  console.log(
    `searched ${Object.entries(places)
      .map(([place, text]) => `${place} (${text.length} chars)`)
      .join(', ')} for ${Object.keys(planted()).length} secrets: ${leaks.length} leaks`,
  );
  expect(leaks).toEqual([]);
});
