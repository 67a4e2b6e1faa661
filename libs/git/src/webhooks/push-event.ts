import { InvalidRefError } from '../errors';
import { isCommitSha, validateRefName } from '../validate';
import type { Forge } from './forge';

/**
 * What a delivery asks the farm to do.
 * - `push`: build `commit` (taken from the payload as is, never resolved from the ref) for a branch
 *   or tag push. For an annotated tag, `commit` is the commit the tag points at whenever the payload
 *   says so (GitHub/Gitea `head_commit.id`, GitLab `checkout_sha`, Gitea `create` `sha`).
 * - `ping`: the forge checks the hook; answer 2xx, build nothing.
 * - `ignore`: a deletion, a ref that is neither branch nor tag, an event the farm does not build...:
 *   answer 2xx with `reason`, build nothing. `ref` is the full ref when the payload names one.
 */
export type PushIntent =
  | {
      kind: 'push';
      refType: 'branch' | 'tag';
      /** Branch or tag name, without `refs/heads/` / `refs/tags/`. */
      name: string;
      /** The full ref, e.g. `refs/heads/main`, `refs/tags/v1.2.3`. */
      ref: string;
      /** The commit to build: 40 (or 64) lowercase hex digits. */
      commit: string;
      /** The repository's clone URLs as the forge lists them (HTTPS first), deduplicated. */
      repoCloneUrls: string[];
      /** The repository's default branch, when the payload says. */
      defaultBranch?: string;
      /** Who pushed (login or name), when the payload says. */
      pusher?: string;
    }
  | { kind: 'ping' }
  | { kind: 'ignore'; reason: string; ref?: string };

/** A delivery of a supported event whose payload lacks what that event must carry, or carries it malformed. */
export class WebhookPayloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * Turns a delivery's payload (already `JSON.parse`d) into what the farm should do, for the event
 * named by the forge's event header:
 * - GitHub: `push` (branches and tags), `ping`;
 * - GitLab: `Push Hook`, `Tag Push Hook` (a `System Hook` is not built);
 * - Gitea / Forgejo: `push` (branches and tags), `create` of a tag (a created branch is built from
 *   its `push`), `delete` is ignored.
 *
 * Note that Gitea sends both `push` and `create` for a new tag when the hook subscribes to both:
 * two deliveries for the same tag and commit.
 *
 * @throws WebhookPayloadError for a supported event whose payload is malformed (not an object, no
 *   `ref`, no `after`, a commit that is not a SHA, an invalid ref name...).
 */
export function parsePushEvent(forge: Forge, event: string, payload: unknown): PushIntent {
  switch (forge) {
    case 'github':
      return parseGitHub(event, payload);
    case 'gitlab':
      return parseGitLab(event, payload);
    case 'gitea':
      return parseGitea(event, payload);
    default: {
      const unknown: never = forge;
      throw new TypeError(`unsupported forge ${show(unknown)}`);
    }
  }
}

type JsonObject = Record<string, unknown>;

const ZERO_SHA = /^(?:0{40}|0{64})$/;
const BRANCH_PREFIX = 'refs/heads/';
const TAG_PREFIX = 'refs/tags/';

function parseGitHub(event: string, payload: unknown): PushIntent {
  if (event === 'ping') return { kind: 'ping' };
  if (event !== 'push') return notBuilt(event);
  const body = requireObject(payload, event);
  const { ref, refType, name } = pushedRef(body, event);
  const after = requireString(body, 'after', event);
  if (refType === undefined) return otherRef(ref);
  if (body['deleted'] === true || ZERO_SHA.test(after)) return deleted(refType, ref);
  const commit = refType === 'tag' ? (headCommitId(body, event) ?? after) : after;
  const repository = optObject(body, 'repository');
  return pushIntent({
    refType,
    name,
    ref,
    commit: requireSha(commit, event, refType === 'tag' ? 'head_commit.id / after' : 'after'),
    repoCloneUrls: cloneUrls([repository, ['clone_url', 'ssh_url', 'git_url']]),
    defaultBranch: optString(repository, 'default_branch'),
    pusher: optString(optObject(body, 'pusher'), 'name') ?? optString(optObject(body, 'sender'), 'login'),
  });
}

function parseGitLab(event: string, payload: unknown): PushIntent {
  if (event !== 'Push Hook' && event !== 'Tag Push Hook') return notBuilt(event);
  const body = requireObject(payload, event);
  const { ref, refType, name } = pushedRef(body, event);
  const after = requireString(body, 'after', event);
  if (refType === undefined) return otherRef(ref);
  if (ZERO_SHA.test(after)) return deleted(refType, ref);
  // checkout_sha is the commit for branches and (peeled) tags alike; `after` of an annotated tag is the tag object.
  const checkoutSha = body['checkout_sha'];
  if (checkoutSha === null) {
    return { kind: 'ignore', reason: 'the payload names no commit to build (checkout_sha is null)', ref };
  }
  const commit = checkoutSha === undefined ? after : checkoutSha;
  const project = optObject(body, 'project');
  const repository = optObject(body, 'repository');
  return pushIntent({
    refType,
    name,
    ref,
    commit: requireSha(commit, event, checkoutSha === undefined ? 'after' : 'checkout_sha'),
    repoCloneUrls: cloneUrls([project, ['git_http_url', 'git_ssh_url']], [repository, ['git_http_url', 'git_ssh_url']]),
    defaultBranch: optString(project, 'default_branch'),
    pusher: optString(body, 'user_username') ?? optString(body, 'user_name'),
  });
}

function parseGitea(event: string, payload: unknown): PushIntent {
  if (event === 'delete') {
    const refType = isObject(payload) ? payload['ref_type'] : undefined;
    return { kind: 'ignore', reason: refType === 'branch' || refType === 'tag' ? `${refType} deleted` : 'ref deleted' };
  }
  if (event !== 'push' && event !== 'create') return notBuilt(event);
  const body = requireObject(payload, event);
  const repository = optObject(body, 'repository');
  const repoCloneUrls = cloneUrls([repository, ['clone_url', 'ssh_url']]);
  const defaultBranch = optString(repository, 'default_branch');
  const sender = optString(optObject(body, 'sender'), 'login') ?? optString(optObject(body, 'sender'), 'username');

  if (event === 'create') {
    const refType = body['ref_type'];
    const bare = requireString(body, 'ref', event);
    if (refType === 'branch') {
      return { kind: 'ignore', reason: 'a created branch is built from its push event', ref: BRANCH_PREFIX + bare };
    }
    if (refType !== 'tag') {
      throw new WebhookPayloadError(`${event} payload: "ref_type" is ${show(refType)}, expected "tag" or "branch"`);
    }
    // Gitea sends the bare tag name; accept a full ref too.
    const name = bare.startsWith(TAG_PREFIX) ? bare.slice(TAG_PREFIX.length) : bare;
    const ref = checkRef(TAG_PREFIX + name, event);
    const commit = requireSha(requireString(body, 'sha', event), event, 'sha');
    return pushIntent({ refType: 'tag', name, ref, commit, repoCloneUrls, defaultBranch, pusher: sender });
  }

  const { ref, refType, name } = pushedRef(body, event);
  const after = requireString(body, 'after', event);
  if (refType === undefined) return otherRef(ref);
  if (ZERO_SHA.test(after)) return deleted(refType, ref);
  const commit = refType === 'tag' ? (headCommitId(body, event) ?? after) : after;
  const pusher = optObject(body, 'pusher');
  return pushIntent({
    refType,
    name,
    ref,
    commit: requireSha(commit, event, refType === 'tag' ? 'head_commit.id / after' : 'after'),
    repoCloneUrls,
    defaultBranch,
    pusher: optString(pusher, 'login') ?? optString(pusher, 'username') ?? sender,
  });
}

type PushFields = Omit<Extract<PushIntent, { kind: 'push' }>, 'kind'>;

/** Leaves out the optional fields the payload did not give, so intents compare cleanly. */
function pushIntent({ defaultBranch, pusher, ...rest }: PushFields): PushIntent {
  return {
    kind: 'push',
    ...rest,
    ...(defaultBranch !== undefined && { defaultBranch }),
    ...(pusher !== undefined && { pusher }),
  };
}

function pushedRef(
  body: JsonObject,
  event: string,
): { ref: string; refType: 'branch' | 'tag' | undefined; name: string } {
  const ref = checkRef(requireString(body, 'ref', event), event);
  for (const [prefix, refType] of [
    [BRANCH_PREFIX, 'branch'],
    [TAG_PREFIX, 'tag'],
  ] as const) {
    if (ref.startsWith(prefix) && ref.length > prefix.length) return { ref, refType, name: ref.slice(prefix.length) };
  }
  return { ref, refType: undefined, name: ref };
}

function checkRef(ref: string, event: string): string {
  try {
    return validateRefName(ref);
  } catch (err) {
    if (err instanceof InvalidRefError) throw new WebhookPayloadError(`${event} payload: ${err.message}`);
    throw err;
  }
}

/** `head_commit.id` when the payload has a head commit (tag pushes: the commit the tag points at). */
function headCommitId(body: JsonObject, event: string): string | undefined {
  const head = body['head_commit'];
  if (head === null || head === undefined) return undefined;
  if (!isObject(head)) throw new WebhookPayloadError(`${event} payload: "head_commit" is not an object`);
  return requireString(head, 'id', event, 'head_commit.id');
}

function notBuilt(event: string): PushIntent {
  return { kind: 'ignore', reason: `event ${show(event)} is not built` };
}

function otherRef(ref: string): PushIntent {
  return { kind: 'ignore', reason: `ref ${show(ref)} is neither a branch nor a tag`, ref };
}

function deleted(refType: 'branch' | 'tag', ref: string): PushIntent {
  return { kind: 'ignore', reason: `${refType} deleted`, ref };
}

function requireObject(payload: unknown, event: string): JsonObject {
  if (!isObject(payload)) throw new WebhookPayloadError(`${event} payload is not a JSON object`);
  return payload;
}

function requireString(obj: JsonObject, key: string, event: string, label = key): string {
  const value = obj[key];
  if (typeof value !== 'string' || value === '') {
    throw new WebhookPayloadError(
      `${event} payload: "${label}" is ${value === undefined ? 'missing' : `${show(value)}, expected a non-empty string`}`,
    );
  }
  return value;
}

function requireSha(value: unknown, event: string, label: string): string {
  if (typeof value !== 'string' || !isCommitSha(value)) {
    throw new WebhookPayloadError(`${event} payload: "${label}" is ${show(value)}, expected a full commit SHA`);
  }
  return value;
}

function optObject(obj: JsonObject | undefined, key: string): JsonObject | undefined {
  const value = obj?.[key];
  return isObject(value) ? value : undefined;
}

function optString(obj: JsonObject | undefined, key: string): string | undefined {
  const value = obj?.[key];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function cloneUrls(...sources: [JsonObject | undefined, string[]][]): string[] {
  const urls = sources.flatMap(([obj, keys]) => keys.map((key) => optString(obj, key)));
  return [...new Set(urls.filter((url) => url !== undefined))];
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON-quoted and cut short: messages echo payload values, which may be long or hold control characters. */
function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
