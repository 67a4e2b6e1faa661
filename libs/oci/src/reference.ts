import { isIP } from 'node:net';
import type { RepositoryRef } from './types';

/** The host Docker Hub's distribution API answers on. */
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', DOCKER_HUB_REGISTRY]);

// distribution's reference grammar (reference/regexp.go).
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPOSITORY_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const HOST_RE = /^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?)(?::[0-9]{1,5})?$/;

/** True when `reference` is a content digest (`algorithm:hex`) rather than a tag. */
export function isDigest(reference: string): boolean {
  return DIGEST_RE.test(reference);
}

/** True when `reference` is a valid tag. */
export function isTag(reference: string): boolean {
  return TAG_RE.test(reference);
}

/**
 * Canonical form of a registry host: lower case, Docker Hub aliases mapped to the host its API
 * answers on. Accepts what people write in docker config keys too
 * (`https://index.docker.io/v1/`, `http://host:5000`).
 */
export function normalizeRegistry(registry: string): string {
  let host = registry.trim().replace(/^[a-z]+:\/\//i, '');
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  host = host.toLowerCase();
  if (!HOST_RE.test(host)) throw new Error(`invalid registry host "${registry}"`);
  return DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB_REGISTRY : host;
}

/** Validates and normalizes a repository reference; Docker Hub official images get `library/`. */
export function normalizeRepositoryRef(ref: RepositoryRef): RepositoryRef {
  const registry = normalizeRegistry(ref.registry);
  let repository = ref.repository;
  if (registry === DOCKER_HUB_REGISTRY && !repository.includes('/')) repository = `library/${repository}`;
  if (!REPOSITORY_RE.test(repository) || repository.length > 255) {
    throw new Error(`invalid repository name "${ref.repository}"`);
  }
  return { registry, repository };
}

/** The host part of `host[:port]`, without brackets for IPv6. */
export function hostname(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(1, registry.indexOf(']'));
  const colon = registry.lastIndexOf(':');
  return colon >= 0 ? registry.slice(0, colon) : registry;
}

/** Loopback registries (127.0.0.0/8, localhost, ::1) are reached over plain HTTP, as Docker does. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = hostname(normalizeRegistry(registry));
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return new URL(`http://[${host}]/`).hostname === '[::1]';
  return false;
}

/** A parsed image reference such as `127.0.0.1:5000/team/app:1.2@sha256:...`. */
export interface ImageReference extends RepositoryRef {
  tag?: string;
  digest?: string;
}

/**
 * Parses an image reference the way Docker does: the first path component is a registry when
 * it contains `.` or `:` or is `localhost`; otherwise the image is on Docker Hub.
 */
export function parseImageReference(input: string): ImageReference {
  let rest = input.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw new Error(`invalid digest in image reference "${input}"`);
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!isTag(tag)) throw new Error(`invalid tag in image reference "${input}"`);
  }
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  const hasRegistry = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost');
  const ref = normalizeRepositoryRef({
    registry: hasRegistry ? first : 'docker.io',
    repository: hasRegistry ? rest.slice(slash + 1) : rest,
  });
  return { ...ref, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}
