import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { skopeoRaw } from '../helpers/image-files';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { startSshd, type TestSshd } from '../helpers/sshd';

/**
 * An agent driving a builder host over SSH (a real OpenSSH server, in a network namespace of
 * its own when the sandbox allows it): builds through the farm, and survives the connection
 * being cut in the middle of a build.
 */

jest.setTimeout(240_000);

let registry: TestRegistry;
let database: TestDatabase;
let sshd: TestSshd;
let farm: TestFarm;
let repo: TestGitRepo;
let secrets: string;

async function submit(dockerfile: string, tag: string): Promise<string> {
  const response = await farm.request('POST', '/v1/builds', {
    repo: repo.url,
    commit: repo.commit,
    dockerfile,
    platforms: ['linux/amd64'],
    tags: [tag],
  });
  expect(response.status).toBe(202);
  return response.body.id;
}

beforeAll(async () => {
  [registry, database, sshd] = await Promise.all([startRegistry(), createTestDatabase(), startSshd()]);
  await pushBusyboxBase(registry.host);
  // The builder host pulls the base from the registry at the address it reaches it by.
  const registryForHost = await sshd.reach(Number(registry.host.split(':')[1]));
  const base = `${registryForHost}/base/busybox:latest`;
  repo = await createGitRepo({
    Dockerfile: `FROM ${base}\nRUN uname -m > /arch\n`,
    'Dockerfile.slow': `FROM ${base}\nRUN sleep 5 && uname -m > /arch\n`,
  });
  secrets = await mkdtemp(join(tmpdir(), 'farm-ssh-e2e-'));
  await writeFile(join(secrets, 'id'), sshd.clientKey, { mode: 0o600 });
  await writeFile(join(secrets, 'known_hosts'), `${sshd.knownHostsLine}\n`);
  farm = await startFarm({ databaseUrl: database.url, agents: [] });
  await farm.startAgent({
    name: 'ssh-builder',
    args: ['--ssh', sshd.url, '--ssh-key', join(secrets, 'id'), '--ssh-known-hosts', join(secrets, 'known_hosts')],
    env: { FARM_INSECURE_REGISTRIES: registryForHost, FARM_SSH_STATE_DIR: join(secrets, 'remote') },
  });
});

afterAll(async () => {
  await farm?.stop();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove(), sshd?.stop()]);
  if (secrets) await rm(secrets, { recursive: true, force: true });
});

test('an SSH builder host builds through the farm, detected as the platform it runs', async () => {
  const { body } = await farm.request('GET', '/v1/agents');
  expect(body.agents).toEqual([
    expect.objectContaining({ name: 'ssh-builder', platforms: ['linux/amd64'], backend: sshd.url, status: 'online' }),
  ]);
  const tag = `${registry.host}/ssh/app:${randomBytes(4).toString('hex')}`;
  const done = await farm.waitForBuild(await submit('Dockerfile', tag));
  expect(done.status).toBe('succeeded');
  expect(done.platforms[0]).toMatchObject({ agent: 'ssh-builder', emulated: false });
  expect((await skopeoRaw(tag)).manifests[0].digest).toBe(done.platforms[0].digest);
  const logs = await farm.request('GET', `/v1/builds/${done.id}/logs?platform=linux/amd64`);
  expect(logs.body).toContain('RUN uname -m > /arch');
});

test('a connection cut mid-build fails that attempt only: the build is retried and published once', async () => {
  const tag = `${registry.host}/ssh/app:cut`;
  const id = await submit('Dockerfile.slow', tag);
  // The remote RUN has started once its log line is in (straight from the agent, so it does not
  // wait on the coordinator recording the platform as running): let it get going, then cut every
  // SSH connection, as a crashing host would.
  const log = async () => (await farm.request('GET', `/v1/builds/${id}/logs?platform=linux/amd64`)).body as string;
  await waitFor(async () => (await log()).includes('RUN sleep 5'), 60_000);
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const cutAt = Date.now();
  await sshd.dropConnections();
  const done = await farm.waitForBuild(id);
  console.log(`ssh connection cut: build done ${Date.now() - cutAt} ms later`);
  expect(done.status).toBe('succeeded');
  expect(done.platforms[0].attempts).toBe(2);
  const logs = (await farm.request('GET', `/v1/builds/${id}/logs?platform=linux/amd64`)).body as string;
  expect(logs).toContain('attempt failed, will retry');
  expect((await skopeoRaw(tag)).manifests).toHaveLength(1);
});
