/** Where an image lives: registry `host[:port]` and repository name. */
export interface RepositoryRef {
  /** `host[:port]`, e.g. `127.0.0.1:5000`; `docker.io` means Docker Hub. */
  registry: string;
  /** Repository path inside the registry, e.g. `team/app`. */
  repository: string;
}

/** OCI platform of a manifest inside an index. */
export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

/** OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
  artifactType?: string;
}
