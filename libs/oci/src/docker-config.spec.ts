import { parseDockerConfig } from './docker-config';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('parseDockerConfig', () => {
  it('reads auth, username/password, identitytoken and registrytoken entries by normalized host', () => {
    const credentials = parseDockerConfig({
      auths: {
        '127.0.0.1:5000': { auth: b64('farm:pa:ss') },
        'Registry.Example.com': { username: 'u', password: 'p' },
        'https://index.docker.io/v1/': { identitytoken: 'refresh' },
        'http://ghcr.io/some/path': { registrytoken: 'bearer' },
      },
    });
    expect(Object.fromEntries(credentials)).toEqual({
      '127.0.0.1:5000': { kind: 'basic', username: 'farm', password: 'pa:ss' },
      'registry.example.com': { kind: 'basic', username: 'u', password: 'p' },
      'registry-1.docker.io': { kind: 'identityToken', token: 'refresh' },
      'ghcr.io': { kind: 'registryToken', token: 'bearer' },
    });
  });

  it('accepts JSON text and empty input, and skips entries without credentials (credsStore)', () => {
    expect(parseDockerConfig(JSON.stringify({ auths: { 'r:1': { auth: b64('a:b') } } })).get('r:1')).toEqual({
      kind: 'basic',
      username: 'a',
      password: 'b',
    });
    expect(parseDockerConfig(undefined).size).toBe(0);
    expect(parseDockerConfig('').size).toBe(0);
    expect(parseDockerConfig({}).size).toBe(0);
    expect(parseDockerConfig({ auths: { 'docker.io': {} }, credsStore: 'desktop' }).size).toBe(0);
  });

  it('names the bad key or field without echoing secrets', () => {
    expect(() => parseDockerConfig('{not json')).toThrow('docker config is not valid JSON');
    expect(() => parseDockerConfig([])).toThrow('must be a JSON object');
    expect(() => parseDockerConfig({ auths: [] })).toThrow('"auths" must be an object');
    expect(() => parseDockerConfig({ auths: { 'bad host!': {} } })).toThrow('auths key "bad host!"');
    expect(() => parseDockerConfig({ auths: { r: { auth: b64('nocolon-secret') } } })).toThrow(
      'auths["r"].auth is not base64("user:password")',
    );
    expect(() => parseDockerConfig({ auths: { r: { auth: b64('nocolon-secret') } } })).not.toThrow(/secret/);
    expect(() => parseDockerConfig({ auths: { r: { username: 'u' } } })).toThrow('needs both username and password');
    expect(() => parseDockerConfig({ auths: { r: { password: 42 } } })).toThrow('auths["r"].password must be a string');
  });
});
