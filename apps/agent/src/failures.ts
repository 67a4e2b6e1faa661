import { UnrecoverableError } from 'bullmq';
import { GitError, InvalidRefError, InvalidRepoPathError, InvalidRepoUrlError, RefNotFoundError } from '@farm/git';
import { RegistryError } from '@farm/oci';

/**
 * What a failed platform job becomes for BullMQ: an UnrecoverableError when another attempt
 * would fail the same way (BuildKit-style: a deterministic failure is not retried), the error
 * itself when trying again later may help (an unreachable git host or registry, a 5xx, a lost
 * connection). Builders already mark their own permanent failures (a failing RUN, a path
 * outside the checkout); this catches what reaches the agent from the git and registry clients.
 */
export function jobFailure(error: unknown, job: { repo: string }): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  if (error instanceof UnrecoverableError) return error;
  if (
    error instanceof RefNotFoundError ||
    error instanceof InvalidRefError ||
    error instanceof InvalidRepoUrlError ||
    error instanceof InvalidRepoPathError
  ) {
    return new UnrecoverableError(error.message);
  }
  if (error instanceof GitError) {
    // git's own words ("read error: Connection reset by peer") do not always say which host.
    const message = error.message.includes(job.repo) ? error.message : `cannot fetch ${job.repo}: ${error.message}`;
    return isPermanentGitFailure(message) ? new UnrecoverableError(message) : new GitError(message, error.exitCode);
  }
  // The registry answered and refused (denied, unauthorized, invalid manifest, name unknown):
  // the client already retried what is retryable (429, 5xx, connection errors, timeouts).
  // Content that arrived other than it was sent (DIGEST_INVALID, SIZE_INVALID...) is the
  // exception: the next attempt builds and pushes again.
  if (
    error instanceof RegistryError &&
    error.status !== undefined &&
    !error.retryable &&
    !CONTENT_MISMATCH.has(error.code ?? '')
  ) {
    return new UnrecoverableError(error.message);
  }
  return error;
}

/** Registry codes for an upload whose content did not match what the client said it sent. */
const CONTENT_MISMATCH = new Set(['DIGEST_INVALID', 'SIZE_INVALID', 'BLOB_UPLOAD_INVALID']);

/**
 * git's words for a repository that is not there or not ours to read: the host answered, so
 * trying again cannot help. A host that does not answer (refused, unresolvable, timed out) is
 * retried, with BullMQ's backoff and attempts as the bound.
 */
const PERMANENT_GIT_FAILURES = [
  /repository not found/i,
  /does not appear to be a git repository/i,
  /repository not exported/i,
  /access denied/i,
  /authentication failed/i,
  /permission denied \(publickey/i,
  /could not read username/i,
];

function isPermanentGitFailure(message: string): boolean {
  return PERMANENT_GIT_FAILURES.some((pattern) => pattern.test(message));
}
