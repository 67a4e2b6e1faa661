import type { PlatformProgressView } from '@farm/contract';
import type { BuildView, PlatformView } from './farm-client';
import { describeProgress, ProgressView } from './progress';

const platform = (name: string, fields: Partial<PlatformView>): PlatformView => ({
  platform: name,
  status: 'queued',
  statusReason: null,
  digest: null,
  mediaType: null,
  size: null,
  agent: null,
  emulated: false,
  attempts: 0,
  startedAt: null,
  finishedAt: null,
  error: null,
  logTail: null,
  progress: null,
  ...fields,
});

const build = (status: string, platforms: PlatformView[], fields: Partial<BuildView> = {}): BuildView => ({
  id: 'b1',
  status,
  repo: 'file:///r',
  ref: null,
  commit: 'c'.repeat(40),
  dockerfile: 'Dockerfile',
  buildArgs: {},
  labels: {},
  scheduleTimeout: null,
  noCache: false,
  context: '.',
  contextDigest: null,
  target: null,
  tags: ['r/app:1'],
  requires: [],
  digest: null,
  mediaType: null,
  platforms,
  createdAt: '2026-01-01T00:00:00.000Z',
  startedAt: null,
  finishedAt: null,
  error: null,
  retries: 0,
  ...fields,
});

function recorder(isTTY: boolean) {
  let text = '';
  let now = 1_000;
  const out = { isTTY, columns: 100, write: (chunk: string) => (text += chunk) };
  return { out, text: () => text, clock: () => now, tick: (ms: number) => (now += ms) };
}

const running = build('running', [
  platform('linux/amd64', { status: 'running', agent: 'a1' }),
  platform('linux/arm64', { status: 'unschedulable', statusReason: 'no online agent serves linux/arm64' }),
]);
const done = build(
  'succeeded',
  [
    platform('linux/amd64', {
      status: 'succeeded',
      agent: 'a1',
      digest: `sha256:${'a'.repeat(64)}`,
      startedAt: '2026-01-01T00:00:01.000Z',
      finishedAt: '2026-01-01T00:00:03.500Z',
    }),
    platform('linux/arm64', {
      status: 'succeeded',
      agent: 'q1',
      emulated: true,
      digest: `sha256:${'b'.repeat(64)}`,
      startedAt: '2026-01-01T00:00:01.000Z',
      finishedAt: '2026-01-01T00:00:05.000Z',
    }),
  ],
  { digest: `sha256:${'c'.repeat(64)}`, finishedAt: '2026-01-01T00:00:05.200Z' },
);

test('without a TTY: one plain line per change, with agent, reason, emulation and durations', () => {
  const t = recorder(false);
  const view = new ProgressView(t.out, t.clock);
  view.update(running);
  t.tick(500);
  view.update(running); // nothing changed: nothing printed
  t.tick(1500);
  view.finish(done);
  expect(t.text()).not.toContain('\x1b');
  expect(t.text().split('\n')).toEqual([
    'linux/amd64  running           0ms  on a1',
    'linux/arm64  unschedulable     0ms  no online agent serves linux/arm64',
    'index        waiting           0ms  for every platform',
    'linux/amd64  succeeded        2.5s  on a1  sha256:aaaaaaaaaaaa',
    'linux/arm64  succeeded        4.0s  on q1 (emulated)  sha256:bbbbbbbbbbbb',
    'index        published        5.2s  sha256:cccccccccccc',
    '',
  ]);
});

test('on a TTY: the block is redrawn in place, then the cursor comes back', () => {
  const t = recorder(true);
  const view = new ProgressView(t.out, t.clock);
  view.update(running);
  t.tick(1200);
  view.update(running);
  view.finish(done);
  const text = t.text();
  expect(text.startsWith('\x1b[?25l')).toBe(true);
  expect(text.split('\x1b[3A')).toHaveLength(3); // two redraws of three lines
  expect(text).toContain('\r\x1b[2Klinux/amd64  running          1.2s  on a1\n');
  expect(text.endsWith('\r\x1b[2Kindex        published        5.2s  sha256:cccccccccccc\n\x1b[?25h')).toBe(true);
});

describe('progress of a running platform', () => {
  const step = (fields: Partial<PlatformProgressView>): PlatformProgressView => ({
    phase: 'building',
    step: null,
    steps: null,
    stage: null,
    stages: null,
    ...fields,
  });

  test.each([
    [step({ phase: 'preparing' }), 'checking out'],
    [step({}), 'building'],
    [step({ step: 2, steps: 5 }), 'building step 2 of 5'],
    [step({ step: 1, steps: 3, stage: 2, stages: 2 }), 'building step 1 of 3 (stage 2 of 2)'],
    [step({ step: 1, steps: 3, stage: 1, stages: 1 }), 'building step 1 of 3'],
    [step({ phase: 'pushing', step: 5, steps: 5 }), 'pushing'],
    [null, ''],
  ])('%j reads "%s"', (progress, text) => {
    expect(describeProgress(progress)).toBe(text);
  });

  test('each step is a change: a plain line per step, then pushing, each with the agent', () => {
    const t = recorder(false);
    const view = new ProgressView(t.out, t.clock);
    const at = (progress: PlatformProgressView | null, attempts = 1) =>
      build('running', [platform('linux/amd64', { status: 'running', agent: 'a1', attempts, progress })]);
    view.update(at(step({ phase: 'preparing' })));
    view.update(at(step({ step: 1, steps: 2 })));
    view.update(at(step({ step: 1, steps: 2 }))); // same step: nothing printed
    view.update(at(step({ step: 2, steps: 2 }), 2));
    view.update(at(step({ phase: 'pushing' }), 2));
    const lines = t
      .text()
      .split('\n')
      .filter((line) => line.startsWith('linux/amd64'));
    expect(lines.map((line) => line.replace(/ +\d+ms +/, ' | '))).toEqual([
      'linux/amd64  running | checking out on a1',
      'linux/amd64  running | building step 1 of 2 on a1',
      'linux/amd64  running | building step 2 of 2 on a1 (attempt 2)',
      'linux/amd64  running | pushing on a1 (attempt 2)',
    ]);
  });
});
