import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { archDockerfile } from '../helpers/dockerfiles';
import { startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { collectFaultReport, expectNothingLost, printFaultReport, type FaultReport } from '../helpers/fault-report';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { freePort } from '../helpers/ports';
import { stopTracked, track } from '../helpers/processes';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';

/**
 * The git host unreachable, and a ref that vanished (issue 5). The repository is served by a
 * real `git daemon` (git://) behind a TCP proxy, which counts every connection git opens and
 * can cut the host off. A ref or commit that is not there fails the build once per platform
 * with a clear error (no retries: the same request fails the same way); an unreachable host is
 * retried with backoff a bounded number of times, and a build whose host comes back succeeds.
 */

jest.setTimeout(300_000);

const run = promisify(execFile);
const PLATFORMS = ['linux/amd64', 'linux/arm64'];
/** BullMQ attempts of a platform job (libs/queue job-options.ts). */
const PLATFORM_ATTEMPTS = 3;
/**
 * git connections one checkout attempt may open on a host that answers: the fetch of the commit
 * by SHA and, when the server refuses it, the fetch of every branch and tag.
 */
const CONNECTIONS_PER_ATTEMPT = 2;

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;
let daemon: GitDaemon;
let gitHost: TcpProxy;
let servedRepo: string;
let gitUrl: string;
let doomedCommit: string;

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({ Dockerfile: archDockerfile(base), 'hello.txt': 'fetched over git://\n' });
  // A branch with a commit of its own, deleted (and garbage-collected) after the submit.
  await repo.git('checkout', '--quiet', '-b', 'doomed');
  doomedCommit = await repo.commitFiles({ 'doomed.txt': 'this commit will vanish\n' });
  await repo.git('checkout', '--quiet', 'main');

  daemon = await startGitDaemon();
  servedRepo = join(daemon.baseDir, 'app.git');
  await run('git', ['clone', '--quiet', '--bare', '--', repo.dir, servedRepo]);
  gitHost = await startTcpProxy({ host: '127.0.0.1', port: daemon.port });
  gitUrl = `git://127.0.0.1:${gitHost.port}/app.git`;

  // No agents yet: the first test changes the repository between the submit and the checkout.
  farm = await startFarm({ databaseUrl: database.url, agents: [] });
});

afterAll(async () => {
  await farm?.stop();
  await gitHost?.stop();
  await daemon?.stop();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove()]);
});

/**
 * A new commit on `main` of the served repository, which no agent's git mirror holds yet: its
 * checkout has to reach the host.
 */
async function newCommit(name: string): Promise<string> {
  const commit = await repo.commitFiles({ [`${name}.txt`]: `${name}\n` }, name);
  await repo.git('push', '--quiet', '--', servedRepo, 'main');
  return commit;
}

async function submit(body: Record<string, unknown>, tag: string): Promise<string> {
  const submitted = await farm.request('POST', '/v1/builds', {
    repo: gitUrl,
    platforms: PLATFORMS,
    tags: [`${registry.host}/git-faults/app:${tag}`],
    ...body,
  });
  expect(submitted.status).toBe(202);
  return submitted.body.id;
}

/** Counts the builds' outcome; `connectionsBefore` is the proxy's count when the agents began. */
async function report(
  scenario: string,
  ids: string[],
  startedAt: number,
  connectionsBefore: number,
): Promise<FaultReport> {
  const result = await collectFaultReport({ scenario, farm, buildIds: ids, startedAt, deadlineMs: 120_000 });
  result.figures['git connections opened'] = gitHost.accepted - connectionsBefore;
  result.figures['attempts per platform'] = ids
    .flatMap((id) => (result.builds.get(id)?.platforms ?? []).map((p: any) => `${p.platform} ${p.attempts}`))
    .join(', ');
  printFaultReport(result);
  expectNothingLost(result);
  return result;
}

test('a branch deleted between submit and checkout, and a commit that never existed: one attempt per platform, a clear error', async () => {
  const startedAt = Date.now();
  const vanished = await submit({ ref: 'doomed' }, 'vanished');
  expect((await farm.request('GET', `/v1/builds/${vanished}`)).body.commit).toBe(doomedCommit);
  const missing = await submit({ commit: 'deadbeef'.repeat(5) }, 'missing');

  // Force-deleted upstream, as after a force push: the branch and its commit are gone.
  await run('git', ['-C', servedRepo, 'branch', '-D', 'doomed']);
  await run('git', ['-C', servedRepo, 'reflog', 'expire', '--expire=now', '--all']);
  await run('git', ['-C', servedRepo, 'gc', '--quiet', '--prune=now']);
  await expect(run('git', ['-C', servedRepo, 'cat-file', '-t', doomedCommit])).rejects.toThrow();

  const before = gitHost.accepted;
  await farm.startAgent({ name: 'amd64' });
  await farm.startAgent({ platform: 'linux/arm64', emulated: true, name: 'arm64' });
  const result = await report('git: ref vanished / commit missing', [vanished, missing], startedAt, before);

  expect(result.failed).toBe(2);
  for (const [id, commit] of [
    [vanished, doomedCommit],
    [missing, 'deadbeef'.repeat(5)],
  ]) {
    const build = result.builds.get(id);
    expect(build.error).toContain(`commit ${commit} is not in ${gitUrl}`);
    for (const platform of build.platforms) {
      expect(platform).toMatchObject({ status: 'failed', error: expect.stringContaining(commit) });
      // A missing commit is not retried.
      expect(platform.attempts).toBe(1);
    }
  }
  // No storm: one checkout attempt per platform and build.
  expect(gitHost.accepted - before).toBeLessThanOrEqual(2 * PLATFORMS.length * CONNECTIONS_PER_ATTEMPT);
});

test('the git host unreachable at checkout: a bounded number of attempts with backoff, then a clear error', async () => {
  const commit = await newCommit('unreachable');
  await gitHost.cut('reset');
  try {
    const before = gitHost.accepted;
    const startedAt = Date.now();
    // By commit: the api does not contact the host, the agents meet the outage.
    const id = await submit({ commit }, 'unreachable');
    const result = await report('git: host unreachable (connections reset)', [id], startedAt, before);

    expect(result.failed).toBe(1);
    const build = result.builds.get(id);
    expect(build.error).toMatch(/git fetch failed/);
    for (const platform of build.platforms) {
      expect(platform).toMatchObject({ status: 'failed', error: expect.stringMatching(/git fetch failed/) });
      // git says "Connection reset by peer"; the error says where.
      expect(platform.error).toContain(`cannot fetch ${gitUrl}`);
      expect(platform.attempts).toBe(PLATFORM_ATTEMPTS);
    }
    // A host that drops the connection cannot have refused the SHA: no fallback fetch of every
    // ref, so one connection per attempt.
    expect(gitHost.accepted - before).toBe(PLATFORMS.length * PLATFORM_ATTEMPTS);
    // With backoff (2 s, then 4 s): the three attempts of a platform span at least 6 s.
    expect(result.durationMs).toBeGreaterThanOrEqual(6_000);
  } finally {
    await gitHost.restore();
  }
});

test('the git host down for a moment: the retry after the backoff succeeds', async () => {
  const commit = await newCommit('flaky');
  await gitHost.cut('reset');
  const before = gitHost.accepted;
  const startedAt = Date.now();
  const id = await submit({ commit }, 'flaky');
  // Both platforms met the outage once (their logs say so); the host is back before their
  // retries (2 s backoff).
  await waitFor(async () => {
    for (const platform of PLATFORMS) {
      const log = await farm.request('GET', `/v1/builds/${id}/logs?platform=${platform}`);
      if (!String(log.body).includes('attempt failed, will retry')) return false;
    }
    return true;
  }, 60_000);
  await gitHost.restore();
  const result = await report('git: host down for a moment', [id], startedAt, before);

  expect(result.succeeded).toBe(1);
  for (const platform of result.builds.get(id).platforms) expect(platform.attempts).toBe(2);
});

test('an unresolvable git host: 422 at submit for a ref, a clear failure at checkout for a commit', async () => {
  const nowhere = 'git://farm-fault-test.invalid/app.git';
  const listedBefore = (await farm.request('GET', '/v1/builds?limit=100')).body.builds.length;
  const byRef = await farm.request('POST', '/v1/builds', {
    repo: nowhere,
    ref: 'main',
    platforms: PLATFORMS,
    tags: [`${registry.host}/git-faults/app:nowhere-ref`],
  });
  expect(byRef.status).toBe(422);
  expect(byRef.body.error).toMatchObject({ code: 'unprocessable', field: 'repo' });
  expect(byRef.body.error.message).toContain('farm-fault-test.invalid');
  // Nothing stored for the refused request.
  expect((await farm.request('GET', '/v1/builds?limit=100')).body.builds).toHaveLength(listedBefore);

  const startedAt = Date.now();
  const id = await submit({ repo: nowhere, commit: repo.commit }, 'nowhere-commit');
  const result = await report('git: unresolvable host', [id], startedAt, gitHost.accepted);
  expect(result.failed).toBe(1);
  const build = result.builds.get(id);
  expect(build.error).toContain('farm-fault-test.invalid');
  for (const platform of build.platforms) expect(platform.attempts).toBeLessThanOrEqual(PLATFORM_ATTEMPTS);
});

interface GitDaemon {
  port: number;
  /** Repositories under it are served as git://host:port/<name>. */
  baseDir: string;
  stop(): Promise<void>;
}

/** A real `git daemon` serving every repository under a fresh temp dir, on loopback. */
async function startGitDaemon(): Promise<GitDaemon> {
  const baseDir = await mkdtemp(join(tmpdir(), 'farm-git-daemon-'));
  const port = await freePort();
  const child = spawn(
    'git',
    [
      'daemon',
      '--reuseaddr',
      '--export-all',
      '--informative-errors',
      `--base-path=${baseDir}`,
      '--listen=127.0.0.1',
      `--port=${port}`,
      baseDir,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: baseDir } },
  );
  track(child);
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const stop = async () => {
    await stopTracked(child);
    await rm(baseDir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      () =>
        run('git', ['ls-remote', `git://127.0.0.1:${port}/none.git`]).then(
          () => true,
          (error: { stderr?: string }) => !/unable to connect|Connection refused/.test(error.stderr ?? ''),
        ),
      10_000,
      () => `git daemon did not start: ${output}`,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, baseDir, stop };
}
