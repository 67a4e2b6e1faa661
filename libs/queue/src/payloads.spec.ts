import { UnrecoverableError } from 'bullmq';
import { parsePlatformBuildJob } from './payloads';

const gitJob = {
  buildId: 'b1',
  platform: 'linux/amd64',
  repo: 'https://git.example.com/app.git',
  commit: 'a'.repeat(40),
  dockerfile: 'Dockerfile',
  context: '.',
  buildArgs: {},
  labels: {},
  pushTo: { registry: 'registry.example.com', repository: 'team/app' },
};
const digest = `sha256:${'b'.repeat(64)}`;

describe('parsePlatformBuildJob: uploaded contexts', () => {
  test('a job with a contextDigest needs no repository or commit', () => {
    const job = parsePlatformBuildJob({ ...gitJob, repo: '', commit: '', contextDigest: digest });
    expect(job).toMatchObject({ contextDigest: digest, repo: '', commit: '' });
  });

  test('a git job still needs a full commit, and has no contextDigest', () => {
    expect(parsePlatformBuildJob(gitJob)).not.toHaveProperty('contextDigest');
    expect(() => parsePlatformBuildJob({ ...gitJob, commit: '' })).toThrow(UnrecoverableError);
  });

  test('a malformed contextDigest is refused for good', () => {
    expect(() => parsePlatformBuildJob({ ...gitJob, contextDigest: 'sha256:abc' })).toThrow(/contextDigest/);
    expect(() => parsePlatformBuildJob({ ...gitJob, contextDigest: `sha512:${'c'.repeat(128)}` })).toThrow(
      UnrecoverableError,
    );
  });
});
