import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The SSH host's key is not the pinned one, or no usable pin was given. Never accepted silently. */
export class HostKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostKeyError';
  }
}

/** How an SSH builder host's key is pinned: at least one of the two. */
export interface HostKeyPin {
  /** One or more known_hosts lines (as `ssh-keyscan` prints them) for the host. */
  knownHostsLine?: string;
  /** `SHA256:<base64>` as `ssh-keygen -lf` prints it; several may be separated by commas or spaces. */
  hostKeyFingerprint?: string;
}

/** Decides whether the key an SSH server presents is the pinned one. */
export interface HostKeyPolicy {
  /**
   * Host key algorithms to negotiate, so that the server presents a key of a pinned type
   * (known_hosts pins only; a fingerprint does not say its key type).
   */
  algorithms?: string[];
  /** Undefined when `key` (the SSH wire-format public key) is pinned, else why it is refused. */
  problem(key: Buffer): string | undefined;
}

// Key types ssh2 verifies, and the signature algorithms it negotiates for each.
const ALGORITHMS_BY_KEY_TYPE: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/** `SHA256:<base64 without padding>` of an SSH wire-format public key, as OpenSSH prints it. */
export function keyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type an SSH wire-format public key starts with (`ssh-ed25519`, ...). */
export function keyType(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const length = key.readUInt32BE(0);
  return length > 0 && 4 + length <= key.length ? key.subarray(4, 4 + length).toString('latin1') : 'unknown';
}

/**
 * Builds the policy for `host:port` from the pins. A known_hosts pin must name this host (plain,
 * `[host]:port`, wildcard or hashed `|1|` patterns); when both pins are given, a key must satisfy both.
 *
 * @throws HostKeyError when nothing is pinned or a pin cannot be parsed.
 */
export function hostKeyPolicy(pin: HostKeyPin, host: string, port: number): HostKeyPolicy {
  const known = pin.knownHostsLine?.trim() ? parseKnownHosts(pin.knownHostsLine, host, port) : undefined;
  const knownHosts = known?.keys;
  const revoked = known?.revoked ?? [];
  const fingerprints = pin.hostKeyFingerprint?.trim() ? parseFingerprints(pin.hostKeyFingerprint) : undefined;
  if (!knownHosts && !fingerprints) {
    throw new HostKeyError(
      `refusing to connect to ${host}:${port} without a pinned host key: give its known_hosts line ` +
        `(ssh-keyscan -p ${port} ${host}, checked out of band) or its fingerprint ` +
        `(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the host)`,
    );
  }
  const pinned = [
    ...(knownHosts ?? []).map((key) => `${keyType(key)} ${keyFingerprint(key)}`),
    ...(fingerprints ?? []),
  ].join(', ');
  return {
    algorithms: knownHosts && [...new Set(knownHosts.flatMap((key) => ALGORITHMS_BY_KEY_TYPE[keyType(key)] ?? []))],
    problem(key: Buffer): string | undefined {
      const presented = keyFingerprint(key);
      if (revoked.some((k) => k.equals(key))) {
        return `host key verification failed for ${host}:${port}: its ${keyType(key)} key ${presented} is marked @revoked`;
      }
      const knownOk = !knownHosts || knownHosts.some((k) => k.length === key.length && timingSafeEqual(k, key));
      const fingerprintOk = !fingerprints || fingerprints.includes(presented);
      if (knownOk && fingerprintOk) return undefined;
      return (
        `host key verification failed for ${host}:${port}: the server presented ${keyType(key)} key ${presented}, ` +
        `which is not the pinned key (${pinned}). If the host was reinstalled, check its new key out of band ` +
        `and update the pin; otherwise someone may be intercepting the connection`
      );
    },
  };
}

/**
 * The keys that known_hosts text (one line or a whole file) pins for `host:port`, and the keys
 * it marks `@revoked` for it. Lines for other hosts are ignored, and so are `@cert-authority`
 * lines and key types ssh2 cannot verify; malformed lines for this host are errors.
 */
export function parseKnownHosts(text: string, host: string, port: number): { keys: Buffer[]; revoked: Buffer[] } {
  const name = port === 22 ? host.toLowerCase() : `[${host.toLowerCase()}]:${port}`;
  const keys: Buffer[] = [];
  const revoked: Buffer[] = [];
  const others = new Set<string>();
  const unusable: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0]?.startsWith('@') ? fields.shift() : undefined;
    const [patterns, type, data] = fields;
    if (!patterns || !type || !data) throw new HostKeyError(`not a known_hosts line: ${JSON.stringify(line)}`);
    if (!hostMatches(patterns, name)) {
      others.add(patterns.startsWith('|') ? '(a hashed host name)' : patterns);
      continue;
    }
    if (marker === '@cert-authority' || !ALGORITHMS_BY_KEY_TYPE[type]) {
      unusable.push(marker ?? type);
      continue;
    }
    if (marker !== undefined && marker !== '@revoked') throw new HostKeyError(`unknown known_hosts marker ${marker}`);
    const key = Buffer.from(data, 'base64');
    if (key.toString('base64').replace(/=+$/, '') !== data.replace(/=+$/, '') || keyType(key) !== type) {
      throw new HostKeyError(`the ${type} key in the known_hosts line for ${name} is malformed`);
    }
    (marker === '@revoked' ? revoked : keys).push(key);
  }
  if (keys.length === 0) {
    const why =
      unusable.length > 0
        ? `its lines for ${name} are not usable (${unusable.join(', ')}; supported: ${Object.keys(ALGORITHMS_BY_KEY_TYPE).join(', ')})`
        : others.size > 0
          ? `it is for ${[...others].join(', ')}, not for ${name}`
          : 'it contains no key';
    throw new HostKeyError(`the known_hosts pin has no key for ${name}: ${why}`);
  }
  return { keys, revoked };
}

/** OpenSSH's host pattern list: `a,b`, wildcards `*` `?`, negation `!`, hashed `|1|salt|hash`. */
function hostMatches(patterns: string, name: string): boolean {
  let matched = false;
  for (const entry of patterns.split(',')) {
    const negated = entry.startsWith('!');
    const pattern = negated ? entry.slice(1) : entry;
    let hit: boolean;
    if (pattern.startsWith('|1|')) {
      const [, , salt = '', hash = ''] = pattern.split('|');
      const expected = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
      const given = Buffer.from(hash, 'base64');
      hit = given.length === expected.length && timingSafeEqual(given, expected);
    } else {
      const regex = pattern
        .toLowerCase()
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.');
      hit = new RegExp(`^${regex}$`).test(name);
    }
    if (hit && negated) return false;
    if (hit) matched = true;
  }
  return matched;
}

function parseFingerprints(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((value) => {
      const match = /^SHA256:([A-Za-z0-9+/]{43})=?$/.exec(value);
      if (!match) {
        throw new HostKeyError(
          `host key fingerprint ${JSON.stringify(value)} is not a SHA256 fingerprint ` +
            '(expected SHA256:<43 base64 characters>, as `ssh-keygen -l -E sha256 -f KEY.pub` prints it)',
        );
      }
      return `SHA256:${match[1]}`;
    });
}
