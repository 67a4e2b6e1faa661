import type { PlatformBuildJob } from '@farm/queue';
import { resultKey } from './result-cache';

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
