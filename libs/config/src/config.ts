import { readFileSync } from 'node:fs';
import { EnvReader } from './env';

type Env = Record<string, string | undefined>;

/** What every process connecting to the queue needs. */
export interface QueueConfig {
  redisUrl: string;
  /** Prefix of every Redis key the farm writes; a Redis ACL can fence agents to `~<prefix>:*`. */
  queuePrefix: string;
}

/** How to reach registries: credentials (docker config.json) and which hosts speak plain HTTP. */
export interface RegistryConfig {
  /** Parsed docker config.json (`{auths: {...}}`), or undefined for anonymous access. */
  registryAuth?: { auths: Record<string, unknown> };
  insecureRegistries: string[];
}

export interface ApiConfig extends QueueConfig, RegistryConfig {
  databaseUrl: string;
  /**
   * Where uploaded build contexts (`farm build --upload`) are stored as blobs, e.g.
   * `registry.example.com/buildfarm/contexts`; agents fetch them from there by digest.
   * Undefined: this farm takes no uploads.
   */
  contextRepository?: { registry: string; repository: string };
  host: string;
  port: number;
  adminToken: string;
  allowFileRepos: boolean;
  /** Requests each API token (or client address, without one) may make per minute; over it, 429. */
  rateLimitPerMinute: number;
  /**
   * FARM_TRUST_PROXY: which proxies in front of the api to believe about the client address
   * (`X-Forwarded-For`), as Express's "trust proxy": a hop count, or addresses / CIDRs /
   * `loopback`, `linklocal`, `uniquelocal`. Undefined: the socket's address is the client.
   */
  trustProxy?: number | string[];
  /** FARM_SECRETS_KEY: seals build secrets for the agents (see libs/queue sealed-secrets.ts); none: no build secrets. */
  secretsKey?: Buffer;
  logLevel: string;
}

export interface CoordinatorConfig extends QueueConfig, RegistryConfig {
  databaseUrl: string;
  /** Where people reach the api; commit statuses link to builds there. */
  publicUrl: string;
  logLevel: string;
}

export interface AgentConfig extends QueueConfig, RegistryConfig {
  /** Platforms this host may build under qemu-user emulation (opt-in, always reported). */
  emulatedPlatforms: string[];
  allowFileRepos: boolean;
  /** Where uploaded build contexts are fetched from by digest (the api's FARM_CONTEXT_REPOSITORY). */
  contextRepository?: { registry: string; repository: string };
  /**
   * FARM_REGISTRY_CACHE, `<registry>/<repository prefix>`: the registry layer cache the agents of
   * a pool share (`buildah bud --cache-from/--cache-to`), one repository per platform under the
   * prefix (`buildcache-<os>-<arch>[-<variant>]`). Undefined: off.
   */
  registryCache?: { registry: string; repository: string };
  /** Where the agent keeps work dirs and its buildah storage. */
  stateDir: string;
  concurrency: number;
  /** On SIGTERM: how long running jobs may take to finish before the agent exits anyway. */
  drainGraceMs: number;
  /** Silent this long, an agent counts as offline. */
  heartbeatTimeoutMs: number;
  /** SSH builder: key and host key pin (the --ssh-* flags override them), remote state dir. */
  ssh: { keyFile?: string; knownHostsFile?: string; hostKey?: string; remoteStateDir: string };
  /** FARM_SECRETS_KEY, the api's: opens build secrets. Without it, builds with secrets fail. */
  secretsKey?: Buffer;
  /**
   * When the filesystem holding the state dir is more than `highPercent` used after a job (as
   * `df` counts it), the agent prunes its caches until it is below `lowPercent` (kubelet's image
   * GC thresholds). FARM_CACHE_PRUNE_HIGH_PERCENT / FARM_CACHE_PRUNE_LOW_PERCENT.
   */
  cachePrune: { highPercent: number; lowPercent: number };
  logLevel: string;
}

const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/buildfarm';
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

function queueConfig(read: EnvReader): QueueConfig {
  const queuePrefix = read.string('FARM_QUEUE_PREFIX', 'farm');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(queuePrefix)) {
    read.problems.push('FARM_QUEUE_PREFIX may only contain letters, digits, "_" and "-"');
  }
  return { redisUrl: read.url('REDIS_URL', ['redis:', 'rediss:'], DEFAULT_REDIS_URL), queuePrefix };
}

/** FARM_REGISTRY_AUTH holds a docker config.json: either the JSON itself or a path to it. */
function parseRegistryAuth(raw: string): { auths: Record<string, unknown> } {
  const text = raw.trimStart().startsWith('{') ? raw : readFileSync(raw, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error('is not valid JSON (expected a docker config.json with "auths")');
  }
  const auths = (parsed as { auths?: unknown } | null)?.auths;
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) {
    throw new Error('must be a docker config.json with an "auths" object');
  }
  return { auths: auths as Record<string, unknown> };
}

const REGISTRY_HOST = /^(?:localhost|\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*)(?::[0-9]{1,5})?$/;
const REPOSITORY_PATH = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);
const IPV4_OR_CIDR = /^(\d{1,3}\.){3}\d{1,3}(\/\d{1,2})?$/;
const IPV6_OR_CIDR = /^[0-9a-f:]*:[0-9a-f:.]*(\/\d{1,3})?$/i;

/** FARM_TRUST_PROXY: a hop count, or a comma-separated list Express's "trust proxy" compiles. */
function parseTrustProxy(raw: string): number | string[] {
  if (/^\d+$/.test(raw)) return Number(raw);
  const entries = raw.split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    if (!PROXY_NAMES.has(entry) && !IPV4_OR_CIDR.test(entry) && !IPV6_OR_CIDR.test(entry)) {
      throw new Error(`must be a hop count or proxy addresses (loopback, 10.0.0.0/8, ...), got "${entry}"`);
    }
  }
  return entries;
}

/** `host[:port]/path` of a registry repository, without tag; the host must say it is one (a "." or ":" or localhost). */
function parseRepository(
  raw: string,
  example = 'registry.example.com/buildfarm/contexts',
): { registry: string; repository: string } {
  const slash = raw.indexOf('/');
  const registry = raw.slice(0, slash);
  const repository = raw.slice(slash + 1);
  const named = registry === 'localhost' || registry.includes('.') || registry.includes(':');
  if (slash <= 0 || !named || !REGISTRY_HOST.test(registry) || !REPOSITORY_PATH.test(repository)) {
    throw new Error(`must be a registry repository such as ${example}, got "${raw}"`);
  }
  return { registry, repository };
}

/** FARM_SECRETS_KEY: 32 random bytes as 64 hex digits or base64 (`openssl rand -hex 32`). */
function parseSecretsKey(raw: string): Buffer {
  const text = raw.trim();
  const hex = /^[0-9a-fA-F]{64}$/.test(text);
  const key = Buffer.from(text, hex ? 'hex' : 'base64');
  if (key.length !== 32 || (!hex && key.toString('base64') !== text)) {
    throw new Error('must be 32 random bytes as 64 hex digits or base64 (openssl rand -hex 32)');
  }
  return key;
}

function registryConfig(read: EnvReader): RegistryConfig {
  return {
    registryAuth: read.parsed('FARM_REGISTRY_AUTH', read.optional('FARM_REGISTRY_AUTH'), parseRegistryAuth),
    insecureRegistries: read.list('FARM_INSECURE_REGISTRIES'),
  };
}

/** FARM_CACHE_PRUNE_*_PERCENT: 100 for the high mark turns pruning off (a disk is never more than full). */
function cachePrune(read: EnvReader): AgentConfig['cachePrune'] {
  const highPercent = read.integer('FARM_CACHE_PRUNE_HIGH_PERCENT', 85, 0, 100);
  const lowPercent = read.integer('FARM_CACHE_PRUNE_LOW_PERCENT', Math.min(70, highPercent), 0, 100);
  if (lowPercent > highPercent) {
    read.problems.push(
      `FARM_CACHE_PRUNE_LOW_PERCENT (${lowPercent}) must not be above FARM_CACHE_PRUNE_HIGH_PERCENT (${highPercent})`,
    );
  }
  return { highPercent, lowPercent };
}

function logLevel(read: EnvReader): string {
  const level = read.string('LOG_LEVEL', 'info');
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'silent'].includes(level)) {
    read.problems.push(`LOG_LEVEL must be one of fatal, error, warn, info, debug, silent`);
  }
  return level;
}

export function loadApiConfig(env: Env = process.env): ApiConfig {
  const read = new EnvReader(env);
  const adminToken = read.string('FARM_ADMIN_TOKEN');
  if (adminToken && adminToken.length < 16) {
    read.problems.push('FARM_ADMIN_TOKEN must be at least 16 characters');
  }
  const config: ApiConfig = {
    ...queueConfig(read),
    databaseUrl: read.url('DATABASE_URL', ['postgres:', 'postgresql:'], DEFAULT_DATABASE_URL),
    host: read.string('HOST', '127.0.0.1'),
    port: read.integer('PORT', 8080, 0, 65535),
    adminToken,
    allowFileRepos: read.boolean('FARM_ALLOW_FILE_REPOS', false),
    ...registryConfig(read),
    contextRepository: read.parsed(
      'FARM_CONTEXT_REPOSITORY',
      read.optional('FARM_CONTEXT_REPOSITORY'),
      parseRepository,
    ),
    // Generous (1,000 a second): a CI fleet sharing one token and the API load bench stay under it.
    rateLimitPerMinute: read.integer('FARM_RATE_LIMIT_PER_MINUTE', 60_000, 1, 10_000_000),
    trustProxy: read.parsed('FARM_TRUST_PROXY', read.optional('FARM_TRUST_PROXY'), parseTrustProxy),
    secretsKey: read.parsed('FARM_SECRETS_KEY', read.optional('FARM_SECRETS_KEY'), parseSecretsKey),
    logLevel: logLevel(read),
  };
  read.done();
  return config;
}

export function loadCoordinatorConfig(env: Env = process.env): CoordinatorConfig {
  const read = new EnvReader(env);
  const config: CoordinatorConfig = {
    ...queueConfig(read),
    ...registryConfig(read),
    databaseUrl: read.url('DATABASE_URL', ['postgres:', 'postgresql:'], DEFAULT_DATABASE_URL),
    publicUrl: read.url('FARM_PUBLIC_URL', ['http:', 'https:'], 'http://127.0.0.1:8080').replace(/\/+$/, ''),
    logLevel: logLevel(read),
  };
  read.done();
  return config;
}

export function loadAgentConfig(env: Env = process.env): AgentConfig {
  const read = new EnvReader(env);
  if (read.optional('DATABASE_URL')) {
    // DESIGN.md: agents hold no database credentials. Refuse rather than silently ignore.
    read.problems.push('DATABASE_URL must not be given to an agent: agents reach Redis, git and registries only');
  }
  const config: AgentConfig = {
    ...queueConfig(read),
    ...registryConfig(read),
    emulatedPlatforms: read.list('FARM_EMULATED_PLATFORMS'),
    allowFileRepos: read.boolean('FARM_ALLOW_FILE_REPOS', false),
    contextRepository: read.parsed(
      'FARM_CONTEXT_REPOSITORY',
      read.optional('FARM_CONTEXT_REPOSITORY'),
      parseRepository,
    ),
    registryCache: read.parsed('FARM_REGISTRY_CACHE', read.optional('FARM_REGISTRY_CACHE'), (raw) =>
      parseRepository(raw, 'registry.example.com/buildfarm/cache'),
    ),
    stateDir: read.string('FARM_STATE_DIR', '/var/lib/buildfarm'),
    concurrency: read.integer('FARM_AGENT_CONCURRENCY', 1, 1, 64),
    drainGraceMs: read.integer('FARM_DRAIN_GRACE_SECONDS', 600, 0, 86_400) * 1000,
    heartbeatTimeoutMs: read.integer('FARM_HEARTBEAT_TIMEOUT_SECONDS', 10, 3, 3600) * 1000,
    ssh: {
      keyFile: read.optional('FARM_SSH_KEY_FILE'),
      knownHostsFile: read.optional('FARM_SSH_KNOWN_HOSTS_FILE'),
      hostKey: read.optional('FARM_SSH_HOST_KEY'),
      remoteStateDir: read.string('FARM_SSH_STATE_DIR', '/var/lib/buildfarm-ssh'),
    },
    secretsKey: read.parsed('FARM_SECRETS_KEY', read.optional('FARM_SECRETS_KEY'), parseSecretsKey),
    cachePrune: cachePrune(read),
    logLevel: logLevel(read),
  };
  read.done();
  return config;
}
