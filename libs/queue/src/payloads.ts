import { UnrecoverableError } from 'bullmq';
import { formatPlatform, isDigest, parsePlatform } from '@farm/domain';

/**
 * Typed job payloads and results, validated whenever they are read back from Redis: agents
 * and coordinators of different versions meet during a rolling deploy, and a payload that does
 * not validate will not validate on a retry either, hence UnrecoverableError.
 *
 * Payloads carry ids and what the worker needs, never secrets: credentials come from each
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
}

type Json = Record<string, unknown>;

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
  const commit = str(data, 'commit', what);
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(commit)) fail(what, 'commit must be a full commit SHA');
  return {
    buildId: str(data, 'buildId', what),
    platform: platform(data, what),
    repo: str(data, 'repo', what),
    commit,
    dockerfile: str(data, 'dockerfile', what),
    context: str(data, 'context', what),
    target: str(data, 'target', what, true),
    buildArgs: stringMap(data, 'buildArgs', what),
    labels: stringMap(data, 'labels', what),
    requires: stringList(data, 'requires', what),
    pushTo: { registry: str(pushTo, 'registry', what), repository: str(pushTo, 'repository', what) },
  };
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
  return {
    buildId: str(data, 'buildId', what),
    pushTo: { registry: str(pushTo, 'registry', what), repository: str(pushTo, 'repository', what) },
  };
}
