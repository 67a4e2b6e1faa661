import { parseWwwAuthenticate } from './www-authenticate';

describe('parseWwwAuthenticate', () => {
  it('reads a distribution bearer challenge whose scope holds commas and spaces', () => {
    const header =
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",' +
      'scope="repository:team/app:pull,push repository:team/base:pull",error="insufficient_scope"';
    expect(parseWwwAuthenticate(header)).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:team/app:pull,push repository:team/base:pull',
          error: 'insufficient_scope',
        },
      },
    ]);
  });

  it('reads a basic challenge', () => {
    expect(parseWwwAuthenticate('Basic realm="Registry Realm"')).toEqual([
      { scheme: 'basic', params: { realm: 'Registry Realm' } },
    ]);
  });

  it('reads several challenges in one header, case-insensitive names, unquoted values and spaces', () => {
    expect(parseWwwAuthenticate('Basic realm=reg , BEARER Realm = "http://x/token" , Service=svc')).toEqual([
      { scheme: 'basic', params: { realm: 'reg' } },
      { scheme: 'bearer', params: { realm: 'http://x/token', service: 'svc' } },
    ]);
  });

  it('unescapes quoted-pairs', () => {
    expect(parseWwwAuthenticate('Bearer realm="a \\"quoted\\" realm\\\\"')).toEqual([
      { scheme: 'bearer', params: { realm: 'a "quoted" realm\\' } },
    ]);
  });

  it('accepts a scheme without parameters and survives junk', () => {
    expect(parseWwwAuthenticate('Negotiate')).toEqual([{ scheme: 'negotiate', params: {} }]);
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate('Bearer realm="unterminated')).toEqual([
      { scheme: 'bearer', params: { realm: 'unterminated' } },
    ]);
  });
});
