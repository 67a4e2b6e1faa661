export { RegistryClient } from './client';
export type { BlobSource, RegistryClientOptions } from './client';
export { parseDockerConfig } from './docker-config';
export type { RegistryCredentials } from './docker-config';
export { RegistryError } from './errors';
export { MANIFEST_ACCEPT, MediaTypes, isImageManifestMediaType, isIndexMediaType } from './media-types';
export { sha256Digest } from './digest';
export { labelOciLayoutImage, readOciLayoutIndex } from './layout';
export {
  DOCKER_HUB_REGISTRY,
  isDigest,
  isLoopbackRegistry,
  isTag,
  normalizeRegistry,
  normalizeRepositoryRef,
  parseImageReference,
} from './reference';
export type { ImageReference } from './reference';
export { parseWwwAuthenticate } from './www-authenticate';
export type { AuthChallenge } from './www-authenticate';
export type { Descriptor, Platform, RepositoryRef } from './types';
