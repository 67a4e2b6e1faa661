import { formatImageReference, formatPlatform, parsePlatform, parseTagReference } from '@farm/domain';
import { validateRefName, validateRepoPath, validateRepoUrl } from '@farm/git';
import { ApiError } from '../common/api-error';

/** A build request as the API, the CLI and webhooks give it, before validation. */
export interface BuildRequestInput {
  repo: string;
  ref?: string;
  commit?: string;
  dockerfile?: string;
  context?: string;
  platforms: string[];
  tags: string[];
  buildArgs?: Record<string, unknown>;
  labels?: Record<string, unknown>;
  target?: string;
  requires?: string[];
  scheduleTimeout?: number;
}

/** A build request whose fields all passed validation, in canonical form. */
export interface ValidBuildRequest {
  repo: string;
  ref: string | null;
  commit?: string;
  dockerfile: string;
  context: string;
  target: string | null;
  platforms: string[];
  tags: string[];
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  requires: string[];
  scheduleTimeout: number | null;
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
  const repo = check('repo', () => validateRepoUrl(input.repo, { allowFile: opts.allowFileRepos }));
  const ref = input.ref === undefined ? null : check('ref', () => validateRefName(input.ref as string));
  const platforms = input.platforms.map((p, i) => validatePlatform(p, `platforms[${i}]`));
  const duplicate = platforms.find((p, i) => platforms.indexOf(p) !== i);
  if (duplicate) throw new ApiError('invalid_request', `platform ${duplicate} is listed twice`, 'platforms');
  const references = input.tags.map((tag, i) => check(`tags[${i}]`, () => parseTagReference(tag)));
  return {
    repo,
    ref,
    commit: input.commit,
    dockerfile: check('dockerfile', () => validateRepoPath(input.dockerfile ?? 'Dockerfile', 'dockerfile')),
    context: check('context', () => validateRepoPath(input.context ?? '.', 'context')),
    target: input.target ?? null,
    platforms,
    tags: [...new Set(references.map((reference) => formatImageReference(reference)))],
    buildArgs: stringMap(input.buildArgs, 'buildArgs', BUILD_ARG_NAME),
    labels: stringMap(input.labels, 'labels', LABEL_KEY),
    requires: [...new Set(input.requires ?? [])].sort(),
    scheduleTimeout: input.scheduleTimeout ?? null,
    pushTo: { registry: references[0].registry, repository: references[0].repository },
  };
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
