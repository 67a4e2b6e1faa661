import { buildFlow } from './flow';
import { platformJobId, publishJobId } from './names';
import { parsePlatformBuildJob, parsePublishJob } from './payloads';
import { parseProgress } from './progress';

const build = {
  buildId: 'b1',
  repo: 'https://git.example/app.git',
  commit: 'a'.repeat(40),
  dockerfile: 'Dockerfile',
  context: '.',
  buildArgs: {},
  labels: {},
  pushTo: { registry: 'registry.example', repository: 'team/app' },
};

describe('runs of a build', () => {
  test('the first run keeps the ids of old; each retry has ids of its own', () => {
    expect(publishJobId('b1')).toBe('publish-b1');
    expect(platformJobId('b1', 'linux/arm64/v8')).toBe('build-b1-linux-arm64');
    expect(publishJobId('b1', 2)).toBe('publish-b1-r2');
    expect(platformJobId('b1', 'linux/arm/v7', 1)).toBe('build-b1-linux-arm-v7-r1');
  });

  test("a retry's flow builds only the given platforms and tells its parent which ones", () => {
    const first = buildFlow({ ...build, platforms: ['linux/amd64', 'linux/arm64'] });
    expect(first.opts?.jobId).toBe('publish-b1');
    expect(first.data).toEqual({ buildId: 'b1', pushTo: build.pushTo });
    expect(first.children?.map((child) => child.opts?.jobId)).toEqual(['build-b1-linux-amd64', 'build-b1-linux-arm64']);

    const retry = buildFlow({ ...build, platforms: ['linux/arm64'], retry: 1 });
    expect(retry.opts?.jobId).toBe('publish-b1-r1');
    expect(parsePublishJob(retry.data)).toEqual({
      buildId: 'b1',
      pushTo: build.pushTo,
      retry: 1,
      platforms: ['linux/arm64'],
    });
    expect(retry.children).toHaveLength(1);
    expect(retry.children?.[0].opts?.jobId).toBe('build-b1-linux-arm64-r1');
    expect(parsePlatformBuildJob(retry.children?.[0].data).retry).toBe(1);
  });

  test('payloads from before retries are run 0; a bad run number is refused', () => {
    expect(parsePublishJob({ buildId: 'b1', pushTo: build.pushTo }).retry).toBe(0);
    expect(parsePlatformBuildJob({ ...build, platform: 'linux/amd64' }).retry).toBe(0);
    expect(() => parsePublishJob({ buildId: 'b1', pushTo: build.pushTo, retry: -1 })).toThrow(/retry/);
    expect(() => parsePlatformBuildJob({ ...build, platform: 'linux/amd64', retry: '1' })).toThrow(/retry/);
    expect(() => parsePublishJob({ buildId: 'b1', pushTo: build.pushTo, platforms: ['linux/x86'] })).toThrow();
  });
});

describe('parseProgress', () => {
  const at = '2026-01-01T00:00:00.000Z';
  test.each([
    [
      { phase: 'preparing', retry: 0, at },
      { phase: 'preparing', retry: 0, at },
    ],
    [
      { phase: 'building', step: 2, steps: 5, retry: 1, at },
      { phase: 'building', step: 2, steps: 5, retry: 1, at },
    ],
    [
      { phase: 'building', step: 1, steps: 3, stage: 2, stages: 2, retry: 0, at },
      { phase: 'building', step: 1, steps: 3, stage: 2, stages: 2, retry: 0, at },
    ],
    // Half a step, or a stage without a step, is left out.
    [
      { phase: 'building', step: 2, retry: 0, at },
      { phase: 'building', retry: 0, at },
    ],
    [
      { phase: 'building', stage: 1, stages: 2, retry: 0, at },
      { phase: 'building', retry: 0, at },
    ],
  ])('%j', (entry, expected) => {
    expect(parseProgress(JSON.stringify(entry))).toEqual(expected);
  });

  test.each([
    ['not json'],
    ['null'],
    [JSON.stringify({ phase: 'sleeping', retry: 0, at })],
    [JSON.stringify({ phase: 'pushing', at })],
  ])('refuses %s', (value) => {
    expect(parseProgress(value)).toBeUndefined();
  });
});
