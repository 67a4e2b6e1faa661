import type { RegistryCredentials } from './docker-config';
import { RegistryError, errorFromResponse } from './errors';
import { IdleTimer, networkError, readLimited } from './http';
import { type Access, coversAccess, formatScopes, mergeAccess, parseScopes } from './scope';
import { parseWwwAuthenticate } from './www-authenticate';

type Scheme = { kind: 'basic' } | { kind: 'bearer'; realm: string; service?: string };

interface CachedToken {
  access: Access;
  token: string;
  expiresAt: number;
}

export interface AuthenticatorOptions {
  credentials: Map<string, RegistryCredentials>;
  timeoutMs: number;
  userAgent: string;
  /** Whether plain HTTP to this `host[:port]` is acceptable (loopback or configured insecure). */
  allowsHttp: (host: string) => boolean;
}

const DEFAULT_TOKEN_LIFETIME_S = 60; // the token spec's default when `expires_in` is missing
const MAX_CACHED_TOKENS = 200;

/**
 * Answers registry challenges: remembers per registry whether it wants Basic or Bearer
 * authentication, so later requests authenticate up front, and caches bearer tokens per
 * registry and scope until shortly before they expire. Secrets live in private fields only.
 */
export class Authenticator {
  readonly #credentials: Map<string, RegistryCredentials>;
  readonly #schemes = new Map<string, Scheme>();
  readonly #tokens = new Map<string, CachedToken[]>();
  readonly #pending = new Map<string, Promise<string>>();
  readonly #options: Omit<AuthenticatorOptions, 'credentials'>;

  constructor({ credentials, ...options }: AuthenticatorOptions) {
    this.#credentials = credentials;
    this.#options = options;
  }

  /** The `Authorization` header for a request needing `scopes`, when the registry wants one. */
  async authorization(registry: string, scopes: string[]): Promise<string | undefined> {
    const scheme = this.#schemes.get(registry);
    if (!scheme) return undefined;
    const credentials = this.#credentials.get(registry);
    if (scheme.kind === 'basic') {
      return credentials?.kind === 'basic' ? basicHeader(credentials) : undefined;
    }
    if (credentials?.kind === 'registryToken') return `Bearer ${credentials.token}`;
    return `Bearer ${await this.token(registry, scheme, parseScopes(scopes))}`;
  }

  /**
   * Reacts to a 401 carrying `header` (`WWW-Authenticate`) to a request sent with `sent` (its
   * Authorization header, if any). Returns true when the request should be sent again with the
   * new authorization, false when there is nothing new to try. Judged by what this request sent,
   * not by what the registry's scheme was before: parallel first requests all get a 401, and
   * each of them must try again once the scheme is known.
   */
  async challenged(registry: string, header: string | null, scopes: string[], sent?: string): Promise<boolean> {
    const challenges = parseWwwAuthenticate(header ?? '');
    const credentials = this.#credentials.get(registry);

    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) {
      const scheme: Scheme = { kind: 'bearer', realm: bearer.params.realm, service: bearer.params.service };
      this.#schemes.set(registry, scheme);
      if (credentials?.kind === 'registryToken') return !sent?.startsWith('Bearer ');
      const wanted = parseScopes(scopes);
      this.forget(registry, wanted); // the token just sent, if any, was refused
      const challengeScopes = parseScopes(bearer.params.scope ? [bearer.params.scope] : []);
      await this.token(registry, scheme, mergeAccess(wanted, challengeScopes));
      return true;
    }

    if (challenges.some((c) => c.scheme === 'basic')) {
      this.#schemes.set(registry, { kind: 'basic' });
      if (credentials?.kind !== 'basic') {
        throw new RegistryError(
          `${registry} requires basic authentication and no username/password is configured for it`,
          { status: 401, code: 'UNAUTHORIZED' },
        );
      }
      return !sent?.startsWith('Basic ');
    }
    return false;
  }

  /** Words to add to a final 401/403, without revealing anything secret. */
  hint(registry: string): string {
    return this.#credentials.has(registry)
      ? `the credentials configured for ${registry} were refused or lack access`
      : `no credentials are configured for ${registry}`;
  }

  private forget(registry: string, access: Access): void {
    const tokens = this.#tokens.get(registry);
    if (tokens)
      this.#tokens.set(
        registry,
        tokens.filter((t) => !coversAccess(t.access, access)),
      );
  }

  private async token(registry: string, scheme: Extract<Scheme, { kind: 'bearer' }>, access: Access): Promise<string> {
    const now = Date.now();
    const cached = this.#tokens.get(registry)?.find((t) => t.expiresAt > now && coversAccess(t.access, access));
    if (cached) return cached.token;

    // Parallel requests needing the same token share one round trip to the token server.
    const key = `${registry} ${scheme.realm} ${formatScopes(access).join(' ')}`;
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.fetchToken(registry, scheme, access)
        .then((fetched) => {
          const live = (this.#tokens.get(registry) ?? []).filter((t) => t.expiresAt > Date.now());
          this.#tokens.set(registry, [fetched, ...live].slice(0, MAX_CACHED_TOKENS));
          return fetched.token;
        })
        .finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    return pending;
  }

  private async fetchToken(
    registry: string,
    scheme: Extract<Scheme, { kind: 'bearer' }>,
    access: Access,
  ): Promise<CachedToken> {
    const credentials = this.#credentials.get(registry);
    let realm: URL;
    try {
      realm = new URL(scheme.realm);
    } catch {
      throw new RegistryError(`${registry} named an invalid token realm "${scheme.realm}"`);
    }
    const what = `token request to ${realm.origin}${realm.pathname} for ${registry}`;
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new RegistryError(`${what}: unsupported realm scheme ${realm.protocol}`);
    }
    if (realm.protocol === 'http:' && credentials && !this.#options.allowsHttp(realm.host)) {
      throw new RegistryError(`${what}: refusing to send credentials over plain http`);
    }

    const scopes = formatScopes(access);
    const headers: Record<string, string> = { 'user-agent': this.#options.userAgent, accept: 'application/json' };
    const url = new URL(realm);
    let init: RequestInit;
    if (credentials?.kind === 'identityToken') {
      // OAuth2 refresh-token grant, as docker does with an `identitytoken`.
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: credentials.token,
        client_id: 'buildfarm',
      });
      if (scheme.service) form.set('service', scheme.service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      headers['content-type'] = 'application/x-www-form-urlencoded';
      init = { method: 'POST', headers, body: form.toString() };
    } else {
      if (scheme.service) url.searchParams.set('service', scheme.service);
      for (const scope of scopes) url.searchParams.append('scope', scope);
      if (credentials?.kind === 'basic') headers.authorization = basicHeader(credentials);
      init = { method: 'GET', headers };
    }

    // No retry loop here: tokens are fetched inside registry requests, which are retried as a whole.
    const requestedAt = Date.now();
    const timer = new IdleTimer(this.#options.timeoutMs);
    let res: Response;
    try {
      res = await fetch(url, { ...init, signal: timer.signal });
    } catch (err) {
      timer.stop();
      throw networkError(what, err, timer, this.#options.timeoutMs);
    }
    const text = await readLimited(res, timer, 1024 * 1024);
    timer.stop();
    if (!res.ok) {
      const refused = res.status === 401 || res.status === 403;
      throw errorFromResponse(what, res.status, res.headers, text, refused ? this.hint(registry) : undefined);
    }

    let answer: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      answer = JSON.parse(text) as typeof answer;
    } catch {
      throw new RegistryError(`${what}: the answer is not JSON`);
    }
    const token = typeof answer.token === 'string' && answer.token ? answer.token : answer.access_token;
    if (typeof token !== 'string' || !token) throw new RegistryError(`${what}: the answer holds no token`);
    const lifetimeS =
      typeof answer.expires_in === 'number' && answer.expires_in > 0 ? answer.expires_in : DEFAULT_TOKEN_LIFETIME_S;
    const lifetimeMs = lifetimeS * 1000;
    // Renew a little early so a token never expires between the cache lookup and the request.
    return { access, token, expiresAt: requestedAt + lifetimeMs - Math.min(10_000, lifetimeMs / 2) };
  }
}

function basicHeader(credentials: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}
