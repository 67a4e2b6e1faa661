import {
  BUILD_STATUSES,
  BuildStatus,
  canTransition,
  isTerminal,
  PlatformBuildStatus,
  statusFromPlatforms,
  TERMINAL_BUILD_STATUSES,
} from './build-status';

describe('isTerminal', () => {
  test.each<[BuildStatus, boolean]>([
    ['queued', false],
    ['running', false],
    ['succeeded', true],
    ['failed', true],
    ['canceled', true],
  ])('%s -> %s', (status, expected) => {
    expect(isTerminal(status)).toBe(expected);
    expect(TERMINAL_BUILD_STATUSES.includes(status)).toBe(expected);
  });
});

describe('canTransition', () => {
  // Every pair, spelled out: anything not listed as allowed must be refused.
  const allowed = new Set([
    'queued->running',
    'queued->failed',
    'queued->canceled',
    'running->succeeded',
    'running->failed',
    'running->canceled',
    'failed->queued',
    'canceled->queued',
  ]);
  const pairs = BUILD_STATUSES.flatMap((from) => BUILD_STATUSES.map((to): [BuildStatus, BuildStatus] => [from, to]));

  test('covers all 25 pairs', () => {
    expect(pairs).toHaveLength(25);
  });

  test.each(pairs)('%s -> %s', (from, to) => {
    expect(canTransition(from, to)).toBe(allowed.has(`${from}->${to}`));
  });

  test('succeeded is final', () => {
    expect(BUILD_STATUSES.filter((to) => canTransition('succeeded', to))).toEqual([]);
  });

  test('refuses unknown statuses', () => {
    expect(canTransition('toString' as BuildStatus, 'queued')).toBe(false);
    expect(canTransition('queued', 'publishing' as BuildStatus)).toBe(false);
  });
});

describe('statusFromPlatforms', () => {
  test.each<[PlatformBuildStatus[], BuildStatus]>([
    [['queued'], 'queued'],
    [['queued', 'queued'], 'queued'],
    [['running'], 'running'],
    [['queued', 'running'], 'running'],
    [['running', 'succeeded'], 'running'],
    [['running', 'failed'], 'running'],
    [['running', 'canceled'], 'running'],
    // Some ended, some still waiting: the build is under way.
    [['queued', 'succeeded'], 'running'],
    [['queued', 'failed'], 'running'],
    [['queued', 'canceled'], 'running'],
    // All ended.
    [['failed'], 'failed'],
    [['succeeded', 'failed'], 'failed'],
    [['failed', 'canceled'], 'failed'],
    [['canceled', 'failed', 'succeeded'], 'failed'],
    [['canceled'], 'canceled'],
    [['succeeded', 'canceled'], 'canceled'],
    [['canceled', 'canceled'], 'canceled'],
    // All succeeded: the coordinator still has to publish the index.
    [['succeeded'], 'running'],
    [['succeeded', 'succeeded', 'succeeded'], 'running'],
  ])('%j -> %s', (platforms, expected) => {
    expect(statusFromPlatforms(platforms)).toBe(expected);
  });

  test('does not depend on order', () => {
    const all: PlatformBuildStatus[] = ['queued', 'running', 'succeeded', 'failed', 'canceled'];
    // Every multiset of up to 3 platforms, in every order, gives the same answer.
    const lists: PlatformBuildStatus[][] = [];
    for (const a of all) for (const b of all) for (const c of all) lists.push([a, b, c]);
    for (const list of lists) {
      const sorted = [...list].sort();
      expect(statusFromPlatforms(list)).toBe(statusFromPlatforms(sorted));
    }
  });

  test('never says succeeded', () => {
    const all: PlatformBuildStatus[] = ['queued', 'running', 'succeeded', 'failed', 'canceled'];
    for (const a of all) for (const b of all) expect(statusFromPlatforms([a, b])).not.toBe('succeeded');
  });

  test('an empty list is a programming error', () => {
    expect(() => statusFromPlatforms([])).toThrow(/at least one platform/);
  });
});
