import { normalizeRegistry } from './reference';

/** Credentials for one registry, as found in a docker `config.json`. */
export type RegistryCredentials =
  | { kind: 'basic'; username: string; password: string }
  /** An OAuth2 refresh token (`identitytoken`), exchanged at the token realm. */
  | { kind: 'identityToken'; token: string }
  /** A bearer token sent to the registry as is (`registrytoken`). */
  | { kind: 'registryToken'; token: string };

interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
  registrytoken?: unknown;
}

/**
 * Reads the `auths` of a docker `config.json` (object or JSON text) into credentials by
 * normalized registry host. Keys may be `host[:port]`, URLs (`https://index.docker.io/v1/`) or
 * `host/path`. Entries without credentials (left by `credsStore`) are skipped; credential
 * helpers are not run. Errors name the registry key and field, never a secret.
 */
export function parseDockerConfig(config: unknown): Map<string, RegistryCredentials> {
  const result = new Map<string, RegistryCredentials>();
  if (config === undefined || config === null || config === '') return result;
  let parsed = config;
  if (typeof parsed === 'string') {
    try {
      parsed = JSON.parse(parsed);
    } catch {
      throw new Error('docker config is not valid JSON');
    }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error('docker config must be a JSON object');
  }
  const auths = (parsed as { auths?: unknown }).auths;
  if (auths === undefined) return result;
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) {
    throw new Error('docker config "auths" must be an object');
  }
  for (const [key, value] of Object.entries(auths)) {
    let registry: string;
    try {
      registry = normalizeRegistry(key);
    } catch {
      throw new Error(`docker config auths key "${key}" is not a registry host`);
    }
    const credentials = readEntry(key, value);
    if (credentials) result.set(registry, credentials);
  }
  return result;
}

function readEntry(key: string, value: unknown): RegistryCredentials | undefined {
  if (typeof value !== 'object' || value === null) {
    throw new Error(`docker config auths["${key}"] must be an object`);
  }
  const entry = value as AuthEntry;
  const field = (name: keyof AuthEntry): string | undefined => {
    const v = entry[name];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw new Error(`docker config auths["${key}"].${name} must be a string`);
    return v;
  };
  const identityToken = field('identitytoken');
  if (identityToken) return { kind: 'identityToken', token: identityToken };
  const registryToken = field('registrytoken');
  if (registryToken) return { kind: 'registryToken', token: registryToken };
  const username = field('username');
  const password = field('password');
  if (username !== undefined && password !== undefined) return { kind: 'basic', username, password };
  const auth = field('auth');
  if (auth !== undefined) {
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new Error(`docker config auths["${key}"].auth is not base64("user:password")`);
    return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (username !== undefined || password !== undefined) {
    throw new Error(`docker config auths["${key}"] needs both username and password`);
  }
  return undefined;
}
