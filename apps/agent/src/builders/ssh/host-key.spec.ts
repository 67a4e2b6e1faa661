import { HostKeyError, hostKeyPolicy, keyFingerprint, keyType, parseKnownHosts } from './host-key';

// Generated with ssh-keygen; fingerprints as `ssh-keygen -lf` printed them.
const ED25519 = 'AAAAC3NzaC1lZDI1NTE5AAAAID75lcSYgTnl0wQpMyctg/5XAf6TrDDcWrz33OR+5XFe';
const ED25519_FINGERPRINT = 'SHA256:4H8akMLjfBgsnahxZAE9CF4cVkSr1XFxMsNxjFxs2SA';
const ECDSA =
  'AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEm6xqVvofZC42TqqOrtBVmnw+HOJqWiR+30tbyQxScIPcDWZTsScVNMJaIkvbtJN1YaPvZwOvmQYjJFDQnHyek=';
const ECDSA_FINGERPRINT = 'SHA256:7JuOVr7oIldlxAuOzCLgK9WAqtfRKSGC22iiy2K3tUI';
// `ssh-keygen -H` of "[10.1.2.3]:2222 ssh-ed25519 ED25519"
const HASHED = '|1|lTVC5oBZJuv77L0eotb7TUmlAZM=|1YJQqnDsEKa1pebL8jfHZSTnaRs=';

const ed25519 = Buffer.from(ED25519, 'base64');
const ecdsa = Buffer.from(ECDSA, 'base64');

describe('keys', () => {
  test('fingerprints as OpenSSH prints them', () => {
    expect(keyFingerprint(ed25519)).toBe(ED25519_FINGERPRINT);
    expect(keyFingerprint(ecdsa)).toBe(ECDSA_FINGERPRINT);
  });

  test('key type from the wire format', () => {
    expect(keyType(ed25519)).toBe('ssh-ed25519');
    expect(keyType(ecdsa)).toBe('ecdsa-sha2-nistp256');
    expect(keyType(Buffer.from([0, 0, 0, 9, 1]))).toBe('unknown');
  });
});

describe('parseKnownHosts', () => {
  test.each<[string, string, number]>([
    [`10.1.2.3 ssh-ed25519 ${ED25519}`, '10.1.2.3', 22],
    [`[10.1.2.3]:2222 ssh-ed25519 ${ED25519} comment here`, '10.1.2.3', 2222],
    [`other,[10.1.2.3]:2222 ssh-ed25519 ${ED25519}`, '10.1.2.3', 2222],
    [`builder-*.example.com ssh-ed25519 ${ED25519}`, 'builder-7.EXAMPLE.com', 22],
    [`${HASHED} ssh-ed25519 ${ED25519}`, '10.1.2.3', 2222],
  ])('%s applies to %s:%d', (line, host, port) => {
    expect(parseKnownHosts(line, host, port)).toEqual({ keys: [ed25519], revoked: [] });
  });

  test('takes a whole known_hosts file: every usable line for the host, nothing else', () => {
    const text = [
      '# keyscan',
      `h ssh-ed25519 ${ED25519}`,
      '',
      `other ecdsa-sha2-nistp256 ${ECDSA}`,
      `@cert-authority * ssh-ed25519 ${ED25519}`,
      'h ssh-dss AAAAB3NzaC1kc3M=',
      `h ecdsa-sha2-nistp256 ${ECDSA}`,
      `other ssh-ed25519 not-even-base64`,
      `@revoked h ssh-ed25519 ${ED25519}`,
    ].join('\n');
    expect(parseKnownHosts(text, 'h', 22)).toEqual({ keys: [ed25519, ecdsa], revoked: [ed25519] });
  });

  test.each<[string, string, number, RegExp]>([
    [`10.1.2.3 ssh-ed25519 ${ED25519}`, '10.1.2.3', 2222, /is for 10\.1\.2\.3, not for \[10\.1\.2\.3\]:2222/],
    [`${HASHED} ssh-ed25519 ${ED25519}`, '10.1.2.4', 2222, /hashed host name/],
    [`*.example.com,!bad.example.com ssh-ed25519 ${ED25519}`, 'bad.example.com', 22, /not for bad\.example\.com/],
    [`@cert-authority h ssh-ed25519 ${ED25519}`, 'h', 22, /not usable \(@cert-authority/],
    [`h ssh-dss AAAA`, 'h', 22, /not usable \(ssh-dss/],
    [`@bogus h ssh-ed25519 ${ED25519}`, 'h', 22, /unknown known_hosts marker/],
    [`h ssh-ed25519 ${ECDSA}`, 'h', 22, /malformed/],
    [`h ssh-ed25519`, 'h', 22, /not a known_hosts line/],
    ['# nothing\n', 'h', 22, /contains no key/],
  ])('%s for %s:%d is refused', (line, host, port, message) => {
    expect(() => parseKnownHosts(line, host, port)).toThrow(message);
  });
});

describe('hostKeyPolicy', () => {
  test('requires a pin', () => {
    expect(() => hostKeyPolicy({}, 'h', 22)).toThrow(HostKeyError);
    expect(() => hostKeyPolicy({ knownHostsLine: ' ', hostKeyFingerprint: '' }, 'h', 22)).toThrow(
      /without a pinned host key/,
    );
  });

  test('a fingerprint pin accepts that key only', () => {
    const policy = hostKeyPolicy({ hostKeyFingerprint: ED25519_FINGERPRINT }, 'h', 22);
    expect(policy.algorithms).toBeUndefined();
    expect(policy.problem(ed25519)).toBeUndefined();
    expect(policy.problem(ecdsa)).toMatch(
      /server presented ecdsa-sha2-nistp256 key SHA256:7JuO.*not the pinned key \(SHA256:4H8a/,
    );
  });

  test('several fingerprints, padded or not', () => {
    const policy = hostKeyPolicy({ hostKeyFingerprint: `${ED25519_FINGERPRINT}=, ${ECDSA_FINGERPRINT}` }, 'h', 22);
    expect(policy.problem(ed25519)).toBeUndefined();
    expect(policy.problem(ecdsa)).toBeUndefined();
  });

  test.each(['MD5:12:34', 'SHA256:short', '4H8akMLjfBgsnahxZAE9CF4cVkSr1XFxMsNxjFxs2SA'])(
    'refuses the fingerprint %s',
    (value) => {
      expect(() => hostKeyPolicy({ hostKeyFingerprint: value }, 'h', 22)).toThrow(/not a SHA256 fingerprint/);
    },
  );

  test('a known_hosts pin asks the server for that key type', () => {
    const policy = hostKeyPolicy({ knownHostsLine: `h ssh-ed25519 ${ED25519}` }, 'h', 22);
    expect(policy.algorithms).toEqual(['ssh-ed25519']);
    expect(policy.problem(ed25519)).toBeUndefined();
    expect(policy.problem(ecdsa)).toMatch(/not the pinned key \(ssh-ed25519 SHA256:4H8a/);
  });

  test('a key marked @revoked is refused even when pinned', () => {
    const policy = hostKeyPolicy(
      { knownHostsLine: `h ssh-ed25519 ${ED25519}\nh ecdsa-sha2-nistp256 ${ECDSA}\n@revoked h ssh-ed25519 ${ED25519}` },
      'h',
      22,
    );
    expect(policy.problem(ed25519)).toMatch(/marked @revoked/);
    expect(policy.problem(ecdsa)).toBeUndefined();
  });

  test('both pins must agree', () => {
    const policy = hostKeyPolicy(
      { knownHostsLine: `h ssh-ed25519 ${ED25519}`, hostKeyFingerprint: ECDSA_FINGERPRINT },
      'h',
      22,
    );
    expect(policy.problem(ed25519)).toBeDefined();
    expect(policy.problem(ecdsa)).toBeDefined();
  });
});
