import { randomBytes } from 'node:crypto';
import { killNow } from '../helpers/agent-faults';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { archDockerfile } from '../helpers/dockerfiles';
import { collectFaultReport, expectNothingLost, printFaultReport } from '../helpers/fault-report';
import { startFarm, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { pidOfClient, startRegistryProxy, type ProxiedRequest, type RegistryProxy } from '../helpers/registry-proxy';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * Coordinator SIGKILL mid-publish (issue 5): two coordinators; the one pushing the index under
 * a build's tags is killed after the first tag is out and before the last (the registry proxy
 * holds each tag PUT a different while, and tells which process sent it). The publish job's
 * lock lapses, the other coordinator takes the job over and publishes the same index: every tag
 * ends on the one digest the build records, and no tag ever received a different one.
 */

jest.setTimeout(300_000);

const TAGS = 6;

let registry: TestRegistry;
let proxy: RegistryProxy;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;

const isTagPut = ({ method, path }: ProxiedRequest) => method === 'PUT' && /\/manifests\/[^/:]+$/.test(path);

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  proxy = await startRegistryProxy(registry.url);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({ Dockerfile: archDockerfile(base), 'hello.txt': 'hello\n' });
  farm = await startFarm({
    databaseUrl: database.url,
    coordinators: 2,
    agents: [{ name: 'host-a' }, { name: 'host-b', platform: 'linux/arm64', emulated: true }],
  });
});

afterAll(async () => {
  await farm?.stop();
  await proxy?.stop();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove()]);
});

test('coordinator SIGKILL between two tag PUTs: the other coordinator publishes the same index', async () => {
  const startedAt = Date.now();
  const run = randomBytes(4).toString('hex');
  const tags = Array.from({ length: TAGS }, (_, i) => `${proxy.host}/faults/coordinator-kill:${run}-${i}`);
  // The coordinator PUTs the tags side by side; the proxy holds the i-th one (i + 1) s, so they
  // land one a second and the publish is caught in the middle.
  const tagIndex = (request: ProxiedRequest) => Number(/-(\d+)$/.exec(request.path)?.[1] ?? 0);
  proxy.setDelay((request) => (isTagPut(request) ? 1_000 * (1 + tagIndex(request)) : 0));
  const firstTag = proxy.nextRequest(isTagPut);
  const response = await farm.request('POST', '/v1/builds', {
    repo: repo.url,
    commit: repo.commit,
    // Every build runs its steps: a result cached from an earlier build would end before the fault.
    noCache: true,
    platforms: ['linux/amd64', 'linux/arm64'],
    tags,
  });
  expect(response.status).toBe(202);
  const id = response.body.id;

  const publisherPid = await pidOfClient(await firstTag);
  // Killed once the first tag is out, while the others are still held.
  while (proxy.digestsPutUnder(tagKey(tags[0])).length === 0) await new Promise((r) => setTimeout(r, 20));
  const publisher = farm.coordinators.find((child) => child.pid === publisherPid);
  expect(publisher).toBeDefined();
  const killedAt = Date.now();
  await killNow(publisher!);
  const tagsDoneAtKill = tags.filter((tag) => proxy.digestsPutUnder(tagKey(tag)).length > 0).length;
  proxy.setDelay(undefined);

  const report = await collectFaultReport({
    scenario: 'coordinator SIGKILL mid-publish',
    farm,
    buildIds: [id],
    proxy,
    startedAt,
    figures: { 'tags published when the coordinator died': `${tagsDoneAtKill} of ${TAGS}` },
  });
  const build = report.builds.get(id);
  report.figures['kill -> published by the other coordinator, ms'] = Date.parse(build.finishedAt) - killedAt;
  printFaultReport(report);
  expectNothingLost(report);
  expect(report.succeeded).toBe(1);
  // Killed mid-publish: some tags were out, the others were not yet.
  expect(tagsDoneAtKill).toBeGreaterThanOrEqual(1);
  expect(tagsDoneAtKill).toBeLessThan(TAGS);
  // Every tag ends on the build's one index digest (also checked by the report, tag by tag).
  const digests = tags.map((tag) => proxy.digestsPutUnder(tagKey(tag)));
  expect(new Set(digests.flat())).toEqual(new Set([build.digest]));
  // The survivor re-PUT the tags: the interrupted publish was really finished by someone else.
  expect(digests.every((puts) => puts.length >= 1)).toBe(true);
  const survivor = farm.coordinators.indexOf(farm.coordinators.find((child) => child !== publisher)!);
  const label = survivor === 0 ? '[coordinator]' : `[coordinator ${survivor + 1}]`;
  const survivorLines = farm
    .output()
    .split('\n')
    .filter((line) => line.startsWith(label));
  expect(survivorLines.some((line) => line.includes(`published ${build.digest}`))).toBe(true);
});

function tagKey(tag: string): string {
  const slash = tag.indexOf('/');
  return tag.slice(slash + 1);
}
