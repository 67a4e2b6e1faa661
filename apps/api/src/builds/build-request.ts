import { formatImageReference, formatPlatform, parsePlatform, parseTagReference } from '@farm/domain';
import { validateRefName, validateRepoPath, validateRepoUrl } from '@farm/git';
import { SECRET_NAME } from '@farm/queue';
import { ApiError } from '../common/api-error';

/** A build request as the API, the CLI and webhooks give it, before validation. */
export interface BuildRequestInput {
  /** Required unless contextDigest is given. */
  repo?: string;
  contextDigest?: string;
  ref?: string;
  commit?: string;
  dockerfile?: string;
  context?: string;
  platforms: string[];
  tags: string[];
  buildArgs?: Record<string, unknown>;
  secrets?: Record<string, unknown>;
  labels?: Record<string, unknown>;
  target?: string;
  requires?: string[];
  scheduleTimeout?: number;
  noCache?: boolean;
}

/** A build request whose fields all passed validation, in canonical form. */
export interface ValidBuildRequest {
  /** Empty for an uploaded context. */
  repo: string;
  /** An uploaded context built instead of a commit (see POST /v1/contexts); absent for git builds. */
  contextDigest?: string;
  ref: string | null;
  commit?: string;
  dockerfile: string;
  context: string;
  target: string | null;
  platforms: string[];
  tags: string[];
  buildArgs: Record<string, string>;
  /** Build secrets in clear: only in memory, sealed before they are stored or queued. */
  secrets: Record<string, string>;
  labels: Record<string, string>;
  requires: string[];
  scheduleTimeout: number | null;
  /** Reuse no layer and no earlier result (`docker build --no-cache`). */
  noCache: boolean;
  /** Where agents push each platform by digest: the first tag's repository. */
  pushTo: { registry: string; repository: string };
}

const BUILD_ARG_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;

/**
 * What the fields mean, checked with the domain and git validators: platforms, image
 * references, repository URLs, refs and repository paths. Throws a 400 ApiError naming the field.
 */
export function validateBuildRequest(input: BuildRequestInput, opts: { allowFileRepos: boolean }): ValidBuildRequest {
  const contextDigest = validateContextSource(input);
  const repo =
    contextDigest === null
      ? check('repo', () => validateRepoUrl(input.repo ?? '', { allowFile: opts.allowFileRepos }))
      : '';
  const ref = input.ref === undefined ? null : check('ref', () => validateRefName(input.ref as string));
  const platforms = input.platforms.map((p, i) => validatePlatform(p, `platforms[${i}]`));
  const duplicate = platforms.find((p, i) => platforms.indexOf(p) !== i);
  if (duplicate) throw new ApiError('invalid_request', `platform ${duplicate} is listed twice`, 'platforms');
  const references = input.tags.map((tag, i) => check(`tags[${i}]`, () => parseTagReference(tag)));
  return {
    repo,
    // Absent rather than null for git builds: their idempotency hashes stay what they were.
    contextDigest: contextDigest ?? undefined,
    ref,
    commit: input.commit,
    dockerfile: check('dockerfile', () => validateRepoPath(input.dockerfile ?? 'Dockerfile', 'dockerfile')),
    context: check('context', () => validateRepoPath(input.context ?? '.', 'context')),
    target: input.target ?? null,
    platforms,
    tags: [...new Set(references.map((reference) => formatImageReference(reference)))],
    buildArgs: stringMap(input.buildArgs, 'buildArgs', BUILD_ARG_NAME),
    secrets: validateSecrets(input.secrets),
    labels: stringMap(input.labels, 'labels', LABEL_KEY),
    requires: [...new Set(input.requires ?? [])].sort(),
    scheduleTimeout: input.scheduleTimeout ?? null,
    noCache: input.noCache ?? false,
    pushTo: { registry: references[0].registry, repository: references[0].repository },
  };
}

/** The build's source is a git repository or an uploaded context, never both. */
function validateContextSource(input: BuildRequestInput): string | null {
  if (input.contextDigest === undefined) return null;
  const extra = (['repo', 'ref', 'commit'] as const).find((field) => input[field] !== undefined);
  if (extra) {
    throw new ApiError(
      'invalid_request',
      `give either contextDigest or ${extra}: an uploaded context has no git source`,
      extra,
    );
  }
  if (!/^sha256:[0-9a-f]{64}$/.test(input.contextDigest)) {
    throw new ApiError('invalid_request', 'contextDigest must be sha256: and 64 lowercase hex digits', 'contextDigest');
  }
  return input.contextDigest;
}

const MAX_SECRETS = 16;
const MAX_SECRET_LENGTH = 32 * 1024;

/** Build secrets: ids buildah accepts, string values; their messages never quote a value. */
function validateSecrets(value: Record<string, unknown> | undefined): Record<string, string> {
  const secrets: Record<string, string> = {};
  const entries = Object.entries(value ?? {});
  if (entries.length > MAX_SECRETS) throw new ApiError('invalid_request', `at most ${MAX_SECRETS} secrets`, 'secrets');
  for (const [name, item] of entries) {
    if (!SECRET_NAME.test(name)) {
      throw new ApiError(
        'invalid_request',
        `secrets has an invalid id "${name.slice(0, 64)}": letters, digits, "_", "." and "-" (at most 64)`,
        `secrets.${name}`,
      );
    }
    if (typeof item !== 'string' || item.length === 0 || item.length > MAX_SECRET_LENGTH) {
      throw new ApiError(
        'invalid_request',
        `secrets.${name} must be a string of 1 to 32768 characters`,
        `secrets.${name}`,
      );
    }
    secrets[name] = item;
  }
  return secrets;
}

export function validatePlatform(value: string, field: string): string {
  return check(field, () => formatPlatform(parsePlatform(value)));
}

export function stringMap(value: Record<string, unknown> | undefined, field: string, keyPattern = BUILD_ARG_NAME) {
  const map: Record<string, string> = {};
  for (const [key, item] of Object.entries(value ?? {})) {
    if (!keyPattern.test(key) || key.length > 128) {
      throw new ApiError('invalid_request', `${field} has an invalid name "${key.slice(0, 64)}"`, `${field}.${key}`);
    }
    if (typeof item !== 'string' || item.length > 8192) {
      throw new ApiError(
        'invalid_request',
        `${field}.${key} must be a string of at most 8192 characters`,
        `${field}.${key}`,
      );
    }
    map[key] = item;
  }
  return map;
}

/** Runs a validator and turns its error into a 400 naming the field. */
export function check<T>(field: string, validate: () => T): T {
  try {
    return validate();
  } catch (error) {
    // The validators throw only for invalid input (InvalidPlatformError, InvalidReferenceError,
    // InvalidRepoUrlError, ...), each with a message meant for the client.
    if (error instanceof ApiError || !(error instanceof Error)) throw error;
    throw new ApiError('invalid_request', `${field}: ${error.message}`, field);
  }
}
