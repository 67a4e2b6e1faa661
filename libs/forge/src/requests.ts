import { ForgeStatusError } from './errors';
import type { CommitState, CommitStatus, Forge, ForgeTarget } from './types';

/** The HTTP request that reports one commit status. */
export interface StatusRequest {
  url: URL;
  headers: Record<string, string>;
  body: string;
  /**
   * True when a refusal only says the status is already what we asked for (GitLab refuses
   * pending -> pending), so reporting it again is a success.
   */
  alreadyApplied(status: number, bodyText: string): boolean;
}

/** Longest description each forge accepts. Gitea stores TEXT; 255 keeps its UI readable. */
export const DESCRIPTION_LIMITS: Readonly<Record<Forge, number>> = { github: 140, gitlab: 255, gitea: 255 };

/** GitHub's limit on a status context; we refuse longer ones instead of cutting a name short. */
const MAX_CONTEXT = 255;

const GITHUB_API_VERSION = '2022-11-28';
const COMMIT_SHA = /^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/;
// Owner, group and repository names on all three forges; no dot segments (the URL parser would
// resolve them, even percent-encoded).
const PATH_SEGMENT = /^(?!\.{1,2}$)[A-Za-z0-9_.-]+$/;
const STATES: ReadonlySet<string> = new Set<CommitState>(['pending', 'success', 'failure', 'error']);
const GITLAB_STATES: Readonly<Record<CommitState, string>> = {
  pending: 'pending',
  success: 'success',
  failure: 'failed',
  error: 'failed',
};

/**
 * Checks a target and a status and builds the forge's request for them.
 *
 * @throws ForgeStatusError (not retryable) naming what is malformed; never echoing the token.
 */
export function buildStatusRequest(target: ForgeTarget, status: CommitStatus, userAgent: string): StatusRequest {
  const base = apiBase(target.apiUrl);
  checkToken(target.token);
  checkStatus(status);
  const description = truncate(status.description ?? '', DESCRIPTION_LIMITS[target.forge]);
  const json = { 'content-type': 'application/json', 'user-agent': userAgent };
  const never = (): boolean => false;

  switch (target.forge) {
    case 'github':
      return {
        url: new URL(`${base}/repos/${ownerRepo(target)}/statuses/${status.commit}`),
        headers: {
          ...json,
          accept: 'application/vnd.github+json',
          authorization: `Bearer ${target.token}`,
          'x-github-api-version': GITHUB_API_VERSION,
        },
        body: JSON.stringify({
          state: status.state,
          target_url: status.targetUrl,
          description,
          context: status.context,
        }),
        alreadyApplied: never,
      };
    case 'gitlab': {
      const state = GITLAB_STATES[status.state];
      return {
        url: new URL(`${base}/api/v4/projects/${gitlabProject(target)}/statuses/${status.commit}`),
        headers: { ...json, accept: 'application/json', 'private-token': target.token },
        body: JSON.stringify({ state, name: status.context, target_url: status.targetUrl, description }),
        // GitLab keeps one running-or-pending status per name and refuses to enqueue it again:
        // `400 {"message":"Cannot transition status via :enqueue from :pending ..."}`.
        alreadyApplied: (code, text) =>
          code === 400 &&
          state === 'pending' &&
          /Cannot transition status via :enqueue from :(pending|running)\b/.test(text),
      };
    }
    case 'gitea':
      return {
        url: new URL(`${base}/api/v1/repos/${ownerRepo(target)}/statuses/${status.commit}`),
        headers: { ...json, accept: 'application/json', authorization: `token ${target.token}` },
        body: JSON.stringify({
          state: status.state,
          target_url: status.targetUrl,
          description,
          context: status.context,
        }),
        alreadyApplied: never,
      };
    default:
      throw invalid(`unknown forge ${quote(target.forge)}: expected github, gitlab or gitea`);
  }
}

/** Cuts `text` to `max` characters (code points, as the forges count), ending with "…" when cut. */
export function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/** The API base URL without trailing slashes. */
function apiBase(apiUrl: string): string {
  let url: URL;
  try {
    url = new URL(apiUrl);
  } catch {
    throw invalid(`forge API URL ${quote(apiUrl)} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw invalid(`forge API URL must be http(s), not ${url.protocol}`);
  }
  // The token goes in a header; credentials in the URL would be a second, unredacted secret.
  if (url.username || url.password) throw invalid('forge API URL must not contain credentials');
  if (url.search || url.hash) throw invalid('forge API URL must not have a query or fragment');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function ownerRepo(target: ForgeTarget): string {
  const segments = splitPath(target.repository);
  if (segments?.length !== 2) {
    throw invalid(`${target.forge} repository must be "owner/repo", got ${quote(target.repository)}`);
  }
  return segments.join('/');
}

function gitlabProject(target: ForgeTarget): string {
  if (/^[1-9][0-9]*$/.test(target.repository)) return target.repository;
  const segments = splitPath(target.repository);
  if (!segments || segments.length < 2) {
    throw invalid(
      `gitlab repository must be a project path "group/project" or a numeric id, got ${quote(target.repository)}`,
    );
  }
  // GitLab takes the whole path as one segment: group%2Fsub%2Fproject.
  return encodeURIComponent(segments.join('/'));
}

function splitPath(repository: string): string[] | undefined {
  if (typeof repository !== 'string') return undefined;
  const segments = repository.split('/');
  return segments.every((s) => PATH_SEGMENT.test(s)) ? segments : undefined;
}

function checkToken(token: string): void {
  // Checked here so that fetch never gets to build an error message quoting a bad header value.
  if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
    throw invalid('forge API token is empty or contains whitespace or non-ASCII characters');
  }
}

function checkStatus(status: CommitStatus): void {
  if (typeof status.commit !== 'string' || !COMMIT_SHA.test(status.commit)) {
    throw invalid(`commit must be a full SHA (40 or 64 hex digits), got ${quote(status.commit)}`);
  }
  if (!STATES.has(status.state)) {
    throw invalid(`state must be pending, success, failure or error, got ${quote(status.state)}`);
  }
  if (typeof status.context !== 'string' || status.context.trim() === '' || /[\x00-\x1f\x7f]/.test(status.context)) {
    throw invalid('context must be a non-empty name without control characters');
  }
  if (Array.from(status.context).length > MAX_CONTEXT) {
    throw invalid(`context is longer than ${MAX_CONTEXT} characters`);
  }
  if (status.description !== undefined && typeof status.description !== 'string') {
    throw invalid('description must be a string');
  }
  if (status.targetUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(status.targetUrl);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      throw invalid(`targetUrl must be an http(s) URL, got ${quote(status.targetUrl)}`);
    }
  }
}

/** JSON-quoted and cut short: messages echo configuration, which may be long or hold control characters. */
function quote(value: unknown): string {
  const text = String(value);
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

function invalid(message: string): ForgeStatusError {
  return new ForgeStatusError(message, { retryable: false });
}
