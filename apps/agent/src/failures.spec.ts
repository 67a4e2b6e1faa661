import { UnrecoverableError } from 'bullmq';
import { GitError, InvalidRepoPathError, RefNotFoundError } from '@farm/git';
import { RegistryError } from '@farm/oci';
import { jobFailure } from './failures';

const job = { repo: 'git://git.example/app.git' };

describe('jobFailure', () => {
  it.each([
    ['a missing commit', new RefNotFoundError('commit abc not found in git://host/app.git')],
    ['a path outside the checkout', new InvalidRepoPathError('dockerfile', 'dockerfile leaves the checkout')],
    [
      'a repository the git host does not have',
      new GitError('git fetch failed (exit 128): fatal: repository not found', 128),
    ],
    [
      'a git daemon that does not export it',
      new GitError('fatal: remote error: access denied or repository not exported: /x.git', 128),
    ],
    ['a registry refusal', new RegistryError('PUT ...: HTTP 403 DENIED: denied', { status: 403, retryable: false })],
    ['an invalid manifest', new RegistryError('PUT ...: HTTP 400 MANIFEST_INVALID', { status: 400, retryable: false })],
  ])('%s is not retried, and keeps its message', (_, error) => {
    const failure = jobFailure(error, job);
    expect(failure).toBeInstanceOf(UnrecoverableError);
    expect(failure.message).toContain(error.message);
  });

  it.each([
    ['an unreachable git host', new GitError('fatal: unable to connect to host: Connection refused', 128)],
    ['an unresolvable git host', new GitError('fatal: unable to look up nowhere.invalid (port 9418)', 128)],
  ])('%s is retried by BullMQ, and the error names the repository', (_, error) => {
    const failure = jobFailure(error, job);
    expect(failure).toBeInstanceOf(GitError);
    expect(failure).not.toBeInstanceOf(UnrecoverableError);
    expect(failure.message).toBe(`cannot fetch ${job.repo}: ${error.message}`);
  });

  it.each([
    ['a registry 503 after the client retries', new RegistryError('HTTP 503', { status: 503, retryable: true })],
    ['a registry connection failure', new RegistryError('connection failed (ECONNRESET)', { retryable: true })],
    ['a digest mismatch (no status)', new RegistryError('blob content does not match its digest')],
    [
      'content the registry received other than it was sent',
      new RegistryError('PUT ...: HTTP 400 DIGEST_INVALID', { status: 400, code: 'DIGEST_INVALID', retryable: false }),
    ],
    ['anything else', new Error('buildah exited')],
  ])('%s is retried by BullMQ', (_, error) => {
    expect(jobFailure(error, job)).toBe(error);
  });

  it('keeps an UnrecoverableError as it is', () => {
    const error = new UnrecoverableError('build failed');
    expect(jobFailure(error, job)).toBe(error);
  });
});
