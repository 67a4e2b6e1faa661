import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '@farm/oci';
import type { PlatformBuildJob } from '@farm/queue';
import type { Builder, CachePruneStep } from './builder';
import { ResultCachingBuilder, resultKey, STALE_RESULT_DAYS } from './result-cache';

const job: PlatformBuildJob = {
  buildId: 'b1',
  platform: 'linux/amd64',
  repo: 'https://git.example/app.git',
  commit: 'a'.repeat(40),
  dockerfile: 'Dockerfile',
  context: '.',
  buildArgs: { A: '1', B: '2' },
  labels: {},
  pushTo: { registry: 'r.example', repository: 'app' },
};

describe('resultKey', () => {
  const key = (changes: Partial<PlatformBuildJob>, emulated = false) =>
    resultKey({ ...job, ...changes }, { os: 'linux', architecture: 'amd64' }, emulated);

  it('ignores the build id, the push target and the order of keys', () => {
    expect(key({ buildId: 'b2', pushTo: { registry: 'r.example', repository: 'other' } })).toBe(key({}));
    expect(key({ buildArgs: { B: '2', A: '1' } })).toBe(key({}));
  });

  it('changes with every input of the image', () => {
    const base = key({});
    for (const changed of [
      key({ commit: 'b'.repeat(40) }),
      key({ buildArgs: { A: '1', B: '3' } }),
      key({ dockerfile: 'other/Dockerfile' }),
      key({ context: 'sub' }),
      key({ target: 'test' }),
      key({ labels: { team: 'x' } }),
      key({}, true),
    ]) {
      expect(changed).not.toBe(base);
    }
  });
});

describe('ResultCachingBuilder.cachePruneSteps', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'farm-results-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A builder that is never asked to build here, only for its prune steps. */
  const inner: Builder = {
    platform: { os: 'linux', architecture: 'amd64' },
    emulated: false,
    setup: () => Promise.reject(new Error('not here')),
    run: () => Promise.reject(new Error('not here')),
    destroy: () => Promise.resolve(),
    async *cachePruneSteps(): AsyncGenerator<CachePruneStep> {
      yield { what: 'the inner cache', remove: () => Promise.resolve() };
    },
  };

  test('records unused for STALE_RESULT_DAYS go first, then the wrapped builder offers its caches', async () => {
    const old = new Date(Date.now() - (STALE_RESULT_DAYS + 1) * 86_400_000);
    const recent = new Date(Date.now() - (STALE_RESULT_DAYS - 1) * 86_400_000);
    for (const [name, time] of [
      ['old.json', old],
      ['old.json.b1.tmp', old],
      ['recent.json', recent],
    ] as const) {
      await writeFile(join(dir, name), '{}');
      await utimes(join(dir, name), time, time);
    }
    const builder = new ResultCachingBuilder(inner, dir, new RegistryClient({}), () => undefined);
    const steps: CachePruneStep[] = [];
    for await (const step of builder.cachePruneSteps()) steps.push(step);
    expect(steps.map((step) => step.what)).toEqual([
      `result-cache records not used for ${STALE_RESULT_DAYS} days`,
      'the inner cache',
    ]);
    await steps[0]!.remove();
    expect(await readdir(dir)).toEqual(['recent.json']);
  });
});
