import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { archDockerfile } from '../helpers/dockerfiles';
import { startFarm, type TestFarm } from '../helpers/farm';
import { collectFaultReport, expectNothingLost, printFaultReport, type FaultReport } from '../helpers/fault-report';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import {
  isBlobUpload,
  isManifestPut,
  startRegistryFaultProxy,
  type RegistryFaultProxy,
  type RegistryRequest,
} from '../helpers/registry-fault-proxy';
import { startRegistryProxy, type RegistryProxy } from '../helpers/registry-proxy';

/**
 * The registry answering 500 / 503 / 429 or dropping connections (issue 5), through a
 * fault-injecting proxy in front of the real registry (with the recording proxy behind it,
 * which sees every manifest PUT that got through): both the agents' pushes by digest and the
 * coordinator's index publish. Transient faults are retried with backoff inside the registry
 * client and the build succeeds on its first attempt; a permanent fault fails the build, after a
 * bounded number of attempts, with the registry's own message in the build's error.
 *
 * Agents push by digest (blobs, then the image manifest); the coordinator PUTs the index under
 * every tag (the first PUT stores it). Each test pushes to repositories of its own, so no blob or
 * manifest is already there and every request kind really happens.
 */

jest.setTimeout(300_000);

const PLATFORMS = ['linux/amd64', 'linux/arm64'];
/** BullMQ attempts of a platform job and of a publish (libs/queue job-options.ts). */
const PLATFORM_ATTEMPTS = 3;
const PUBLISH_ATTEMPTS = 5;
/** Requests per registry call: the first and the RegistryClient's 3 retries. */
const CLIENT_TRIES = 4;
/**
 * Blobs of each platform's image: the busybox base layer, the RUN and COPY layers, the config.
 * The client uploads them in parallel, and each upload runs out its own retries.
 */
const BLOBS_PER_IMAGE = 4;

let registry: TestRegistry;
let recorder: RegistryProxy;
let faults: RegistryFaultProxy;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  recorder = await startRegistryProxy(registry.url);
  faults = await startRegistryFaultProxy(recorder.url);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({ Dockerfile: archDockerfile(base), 'hello.txt': 'pushed through faults\n' });
  farm = await startFarm({
    databaseUrl: database.url,
    agents: [{ name: 'amd64' }, { platform: 'linux/arm64', emulated: true, name: 'arm64' }],
  });
});

afterEach(() => faults?.clear());

afterAll(async () => {
  await farm?.stop();
  await Promise.all([faults?.stop(), recorder?.stop()]);
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove()]);
});

/** Submits one build per repository (`faults.host/<repository>:<tag>`); returns the accepted ids. */
async function submit(repositories: string[], tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (const repository of repositories) {
    const submitted = await farm.request('POST', '/v1/builds', {
      repo: repo.url,
      commit: repo.commit,
      // Every build runs its steps: a result cached from an earlier build would end before the fault.
      noCache: true,
      platforms: PLATFORMS,
      tags: [`${faults.host}/${repository}:${tag}`],
      // An image of its own (agents reuse the result of a job with the same inputs, which
      // would turn a push into a copy from an earlier test's repository).
      labels: { 'test.repository': repository },
    });
    expect(submitted.status).toBe(202);
    ids.push(submitted.body.id);
  }
  return ids;
}

async function report(scenario: string, ids: string[], startedAt: number): Promise<FaultReport> {
  const result = await collectFaultReport({
    scenario,
    farm,
    buildIds: ids,
    proxy: recorder,
    // Tags are read from the registry itself, past the faults.
    registryUrl: registry.url,
    startedAt,
    deadlineMs: 150_000,
  });
  const byAnswer = new Map<string, number>();
  for (const { answer } of faults.injected) byAnswer.set(String(answer), (byAnswer.get(String(answer)) ?? 0) + 1);
  result.figures['faults injected'] =
    `${faults.injected.length} (${[...byAnswer].map(([a, n]) => `${a} x${n}`).join(', ')})`;
  result.figures['attempts per platform'] = ids
    .flatMap((id) => (result.builds.get(id)?.platforms ?? []).map((p: any) => `${p.platform} ${p.attempts}`))
    .join(', ');
  printFaultReport(result);
  // What the farm said, to tell why a build was lost.
  if (result.problems.length > 0) {
    const polls = /"method":"GET"/;
    console.log(
      farm
        .output()
        .split('\n')
        .filter((line) => !polls.test(line))
        .slice(-150)
        .join('\n'),
    );
  }
  expectNothingLost(result);
  // No fault took a process down (an agent once died of an unread upload stream's error).
  for (const child of [farm.agent('amd64'), farm.agent('arm64'), ...farm.coordinators]) {
    expect(child.exitCode).toBeNull();
  }
  return result;
}

/** The first request after `faulted` with the same method and path: its retry. */
function retryOf(faulted: RegistryRequest): RegistryRequest | undefined {
  const path = (request: RegistryRequest) => request.path.split('?')[0];
  return faults.requests.find(
    (r) => r.at >= faulted.at && r !== faulted && r.method === faulted.method && path(r) === path(faulted),
  );
}

test("transient 500 / 503 / 429 / dropped connections on the agents' pushes: retried, the builds succeed", async () => {
  faults.injected.length = 0;
  const blobStarts = (r: RegistryRequest) => isBlobUpload(r) && r.method === 'POST';
  const blobPuts = (r: RegistryRequest) => isBlobUpload(r) && r.method === 'PUT';
  const imagePuts = (r: RegistryRequest) => isManifestPut(r, 'image');
  faults.inject({ match: blobStarts, fault: { status: 503 }, times: 2 });
  faults.inject({ match: blobPuts, fault: { drop: true }, times: 2 });
  faults.inject({ match: blobPuts, fault: { status: 500 }, times: 1 });
  faults.inject({ match: imagePuts, fault: { status: 429, retryAfterSeconds: 1 }, times: 1 });
  faults.inject({ match: imagePuts, fault: { drop: true }, times: 1 });
  const planned = 7;

  const startedAt = Date.now();
  const ids = await submit(['transient/push-a', 'transient/push-b'], '1');
  const result = await report('registry: transient faults on the agents pushes', ids, startedAt);

  expect(result.succeeded).toBe(ids.length);
  expect(faults.injected).toHaveLength(planned);
  // Absorbed by the registry client's own retries: no platform job needed a second attempt.
  for (const id of ids) {
    for (const platform of result.builds.get(id).platforms) expect(platform.attempts).toBe(1);
  }
  // Retry-After was honoured: the 429'd manifest PUT came back no sooner than 1 s later.
  const throttled = faults.injected.find((f) => f.answer === 429)!.request;
  expect(retryOf(throttled)!.at - throttled.at).toBeGreaterThanOrEqual(1_000);
});

test("transient faults on the coordinator's index publish: retried, every tag gets the index", async () => {
  faults.injected.length = 0;
  faults.inject({ match: (r) => isManifestPut(r, 'index', 'tag'), fault: { status: 503 }, times: 2 });
  faults.inject({ match: (r) => isManifestPut(r, 'index', 'tag'), fault: { drop: true }, times: 1 });
  faults.inject({ match: (r) => isManifestPut(r, 'index', 'tag'), fault: { status: 500 }, times: 1 });
  faults.inject({
    match: (r) => isManifestPut(r, 'index', 'tag'),
    fault: { status: 429, retryAfterSeconds: 1 },
    times: 1,
  });
  const planned = 5;

  const startedAt = Date.now();
  const ids = await submit(['transient/publish'], '1');
  const result = await report('registry: transient faults on the index publish', ids, startedAt);

  expect(result.succeeded).toBe(1);
  expect(faults.injected).toHaveLength(planned);
  // Every retry PUT the same index: the tag saw one digest only.
  expect(new Set(recorder.digestsPutUnder('transient/publish:1'))).toEqual(new Set([result.builds.get(ids[0]).digest]));
});

test("a permanent 500 on blob uploads fails the build after bounded attempts, with the registry's message", async () => {
  faults.injected.length = 0;
  const message = 'injected: the storage backend is read-only';
  faults.inject({ match: isBlobUpload, fault: { status: 500, code: 'UNKNOWN', message } });

  const startedAt = Date.now();
  const ids = await submit(['permanent/blob'], '1');
  const result = await report('registry: permanent 500 on blob uploads', ids, startedAt);

  expect(result.failed).toBe(1);
  const build = result.builds.get(ids[0]);
  expect(build.error).toContain(message);
  for (const platform of build.platforms) {
    expect(platform).toMatchObject({ status: 'failed', error: expect.stringContaining(message) });
    expect(platform.attempts).toBe(PLATFORM_ATTEMPTS);
  }
  // Bounded: each attempt of each platform tries each blob's upload at most CLIENT_TRIES times.
  expect(faults.injected.length).toBeLessThanOrEqual(
    PLATFORMS.length * PLATFORM_ATTEMPTS * BLOBS_PER_IMAGE * CLIENT_TRIES,
  );
  expect(recorder.digestsPutUnder('permanent/blob:1')).toEqual([]);
});

test('a permanent refusal (403 DENIED) of the image manifest fails at once, without retrying the job', async () => {
  faults.injected.length = 0;
  const message = 'injected: pushes to this repository are denied by policy';
  faults.inject({ match: (r) => isManifestPut(r, 'image'), fault: { status: 403, code: 'DENIED', message } });

  const startedAt = Date.now();
  const ids = await submit(['permanent/denied'], '1');
  const result = await report('registry: 403 DENIED on the image manifest', ids, startedAt);

  expect(result.failed).toBe(1);
  const build = result.builds.get(ids[0]);
  expect(build.error).toContain(message);
  for (const platform of build.platforms) {
    expect(platform).toMatchObject({ status: 'failed', error: expect.stringContaining('DENIED') });
    // A refusal is not retried: one attempt, one PUT per platform.
    expect(platform.attempts).toBe(1);
  }
  expect(faults.injected).toHaveLength(PLATFORMS.length);
});

test("a permanent 503 on the index publish fails the build with the registry's message, publishing no tag", async () => {
  faults.injected.length = 0;
  const message = 'injected: the registry is in read-only maintenance mode';
  faults.inject({
    match: (r) => isManifestPut(r, 'index', 'tag'),
    fault: { status: 503, code: 'UNAVAILABLE', message, retryAfterSeconds: 0 },
  });

  const startedAt = Date.now();
  const ids = await submit(['permanent/publish'], '1');
  const result = await report('registry: permanent 503 on the index publish', ids, startedAt);

  expect(result.failed).toBe(1);
  const build = result.builds.get(ids[0]);
  expect(build.error).toContain('publishing the index failed');
  expect(build.error).toContain(message);
  // The platforms themselves built and pushed fine.
  for (const platform of build.platforms) expect(platform.status).toBe('succeeded');
  // Bounded: every publish attempt tries the tag at most CLIENT_TRIES times.
  expect(faults.injected.length).toBeLessThanOrEqual(PUBLISH_ATTEMPTS * CLIENT_TRIES);
  expect(recorder.digestsPutUnder('permanent/publish:1')).toEqual([]);
});
