import { shouldLeaveFor } from './affinity';
import type { AgentPresence } from './agent-presence';

const now = Date.parse('2026-11-27T00:00:00Z');
const affine: AgentPresence = {
  id: 'warm',
  name: 'warm',
  version: '0.1.0',
  platforms: ['linux/amd64'],
  emulated: false,
  labels: ['large'],
  backend: 'local',
  concurrency: 1,
  state: 'online',
  currentJobs: [],
  startedAt: '2026-11-26T00:00:00Z',
  lastSeenAt: new Date(now - 1_000).toISOString(),
  heartbeatTimeoutMs: 10_000,
};
const self = { name: 'cold', emulated: false };
const job = { platform: 'linux/amd64', requires: ['large'] };
const busy = { buildId: 'b', platform: 'linux/amd64', jobId: 'j', startedAt: affine.lastSeenAt };

describe('shouldLeaveFor', () => {
  test('leaves a job for another agent that is online, serves it and has a free slot', () => {
    expect(shouldLeaveFor(affine, self, job, now)).toBe(true);
    expect(shouldLeaveFor({ ...affine, concurrency: 2, currentJobs: [busy] }, self, job, now)).toBe(true);
  });

  test('builds it here when it is this agent, or no agent built the repository', () => {
    expect(shouldLeaveFor(affine, { ...self, name: 'warm' }, job, now)).toBe(false);
    expect(shouldLeaveFor(undefined, self, job, now)).toBe(false);
  });

  test('never waits: a busy, draining or silent affine agent gets nothing', () => {
    expect(shouldLeaveFor({ ...affine, currentJobs: [busy] }, self, job, now)).toBe(false);
    expect(shouldLeaveFor({ ...affine, state: 'draining' }, self, job, now)).toBe(false);
    expect(shouldLeaveFor(affine, self, job, now + 20_000)).toBe(false);
  });

  test('only to an agent that may build the job: platform and required labels', () => {
    expect(shouldLeaveFor(affine, self, { platform: 'linux/arm64' }, now)).toBe(false);
    expect(shouldLeaveFor(affine, self, { platform: 'linux/amd64', requires: ['gpu'] }, now)).toBe(false);
  });

  test('never from a native agent to an emulating one', () => {
    expect(shouldLeaveFor({ ...affine, emulated: true }, self, job, now)).toBe(false);
    expect(shouldLeaveFor({ ...affine, emulated: true }, { ...self, emulated: true }, job, now)).toBe(true);
  });
});
