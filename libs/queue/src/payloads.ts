import { UnrecoverableError } from 'bullmq';
import { formatPlatform, isDigest, parsePlatform } from '@farm/domain';

/**
 * Typed job payloads and results, validated whenever they are read back from Redis: agents
 * and coordinators of different versions meet during a rolling deploy, and a payload that does
 * not validate will not validate on a retry either, hence UnrecoverableError.
 *
 * Payloads carry ids and what the worker needs, never secrets in clear (build secrets travel
 * sealed, see sealed-secrets.ts): credentials come from each
 * process's own configuration.
 */

/** Where a built image is pushed by digest (no tag): the repository of the build's first tag. */
export interface PushTarget {
  registry: string;
  repository: string;
}

/** One platform of a build: the child job on `build.<os>.<arch>[.<variant>]`. */
export interface PlatformBuildJob {
  buildId: string;
  platform: string;
  repo: string;
  commit: string;
  dockerfile: string;
  context: string;
  target?: string;
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  /** Agent labels the building agent must carry (routing guarantees it; agents check again). */
  requires?: string[];
  pushTo: PushTarget;
  /**
   * An uploaded build context (`farm build --upload`), built instead of `repo` at `commit`
   * (both empty then): a .tar.gz blob agents fetch by this digest from the farm's context
   * repository (FARM_CONTEXT_REPOSITORY). `context` and `dockerfile` are paths inside it.
   */
  contextDigest?: string;
  /** The build's run this job belongs to: 0, then n for the nth retry (absent before retries). */
  retry?: number;
  /**
   * Build secrets, sealed with FARM_SECRETS_KEY (see sealed-secrets.ts): never in clear in a
   * payload. The agent opens them and hands them to buildah as `--secret` files.
   */
  secrets?: string;
  /** Build without any cache (`--no-cache`): no layer reused, no earlier result reused. */
  noCache?: boolean;
}

/** What an agent returns for a platform it built and pushed. */
export interface PlatformBuildResult {
  platform: string;
  digest: string;
  mediaType: string;
  size: number;
  emulated: boolean;
  agent: string;
  startedAt: string;
  finishedAt: string;
}

/** The parent job on the publish queue. */
export interface PublishJob {
  buildId: string;
  /** Where the platforms were pushed; the index is assembled from there. */
  pushTo: PushTarget;
  /** The build's run (see PlatformBuildJob.retry); a publish of an older run publishes nothing. */
  retry?: number;
  /**
   * The platforms this run builds (its children); the others succeeded in an earlier run and
   * are reused as recorded. Absent: every platform of the build.
   */
  platforms?: string[];
}

type Json = Record<string, unknown>;

const CONTEXT_DIGEST = /^sha256:[0-9a-f]{64}$/;

function fail(what: string, problem: string): never {
  throw new UnrecoverableError(`invalid ${what}: ${problem}`);
}

function object(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(what, 'not an object');
  return value as Json;
}

function str(data: Json, key: string, what: string, optional = false): string {
  const value = data[key];
  if (value === undefined && optional) return undefined as unknown as string;
  if (typeof value !== 'string' || value.length === 0) fail(what, `${key} must be a non-empty string`);
  return value;
}

function stringMap(data: Json, key: string, what: string): Record<string, string> {
  const value = object(data[key] ?? {}, what);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') fail(what, `${key}.${k} must be a string`);
  }
  return value as Record<string, string>;
}

/** A run number: absent (0) in payloads of versions before retries existed. */
function run(data: Json, what: string): number {
  const value = data.retry ?? 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) fail(what, 'retry must be a whole number');
  return value;
}

/** A list of strings; absent in payloads of versions before labels existed. */
function stringList(data: Json, key: string, what: string): string[] {
  const value = data[key] ?? [];
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string'))
    fail(what, `${key} must be a list of strings`);
  return value as string[];
}

function platform(data: Json, what: string): string {
  try {
    return formatPlatform(parsePlatform(str(data, 'platform', what)));
  } catch (error) {
    return fail(what, (error as Error).message);
  }
}

export function parsePlatformBuildJob(value: unknown): PlatformBuildJob {
  const what = 'platform build job';
  const data = object(value, what);
  const pushTo = object(data.pushTo, what);
  const contextDigest = str(data, 'contextDigest', what, true);
  if (contextDigest !== undefined && !CONTEXT_DIGEST.test(contextDigest)) {
    fail(what, 'contextDigest must be sha256:<hex>');
  }
  // An uploaded context replaces the git source: no repository, no commit.
  const commit = contextDigest === undefined ? str(data, 'commit', what) : '';
  if (contextDigest === undefined && !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(commit)) {
    fail(what, 'commit must be a full commit SHA');
  }
  return {
    buildId: str(data, 'buildId', what),
    platform: platform(data, what),
    repo: contextDigest === undefined ? str(data, 'repo', what) : '',
    commit,
    ...(contextDigest !== undefined && { contextDigest }),
    dockerfile: str(data, 'dockerfile', what),
    context: str(data, 'context', what),
    target: str(data, 'target', what, true),
    buildArgs: stringMap(data, 'buildArgs', what),
    labels: stringMap(data, 'labels', what),
    requires: stringList(data, 'requires', what),
    pushTo: { registry: str(pushTo, 'registry', what), repository: str(pushTo, 'repository', what) },
    retry: run(data, what),
    ...(data.secrets !== undefined && { secrets: str(data, 'secrets', what) }),
    ...(data.noCache !== undefined && { noCache: flag(data, 'noCache', what) }),
  };
}

function flag(data: Json, key: string, what: string): boolean {
  const value = data[key];
  if (typeof value !== 'boolean') fail(what, `${key} must be true or false`);
  return value;
}

export function parsePlatformBuildResult(value: unknown): PlatformBuildResult {
  const what = 'platform build result';
  const data = object(value, what);
  const digest = str(data, 'digest', what);
  if (!isDigest(digest)) fail(what, 'digest is malformed');
  const size = data.size;
  if (typeof size !== 'number' || !Number.isInteger(size) || size <= 0) fail(what, 'size must be a positive integer');
  if (typeof data.emulated !== 'boolean') fail(what, 'emulated must be a boolean');
  return {
    platform: platform(data, what),
    digest,
    mediaType: str(data, 'mediaType', what),
    size,
    emulated: data.emulated,
    agent: str(data, 'agent', what),
    startedAt: str(data, 'startedAt', what),
    finishedAt: str(data, 'finishedAt', what),
  };
}

export function parsePublishJob(value: unknown): PublishJob {
  const what = 'publish job';
  const data = object(value, what);
  const pushTo = object(data.pushTo, what);
  let platforms: string[] | undefined;
  if (data.platforms !== undefined) {
    platforms = stringList(data, 'platforms', what).map((name) => platform({ platform: name }, what));
  }
  return {
    buildId: str(data, 'buildId', what),
    pushTo: { registry: str(pushTo, 'registry', what), repository: str(pushTo, 'repository', what) },
    retry: run(data, what),
    ...(platforms ? { platforms } : {}),
  };
}
