import {
  formatImageReference,
  ImageReference,
  InvalidReferenceError,
  isValidTag,
  parseImageReference,
  parseTagReference,
} from './reference';

const SHA = 'sha256:' + 'a'.repeat(64);

describe('parseImageReference', () => {
  test.each<[string, ImageReference]>([
    // Docker Hub defaults.
    ['app', { registry: 'docker.io', repository: 'library/app' }],
    ['app:1.0', { registry: 'docker.io', repository: 'library/app', tag: '1.0' }],
    ['user/app', { registry: 'docker.io', repository: 'user/app' }],
    ['user/app:latest', { registry: 'docker.io', repository: 'user/app', tag: 'latest' }],
    ['docker.io/app', { registry: 'docker.io', repository: 'library/app' }],
    ['docker.io/library/app', { registry: 'docker.io', repository: 'library/app' }],
    ['index.docker.io/app', { registry: 'docker.io', repository: 'library/app' }],
    ['index.docker.io/user/app', { registry: 'docker.io', repository: 'user/app' }],
    ['a/b/c', { registry: 'docker.io', repository: 'a/b/c' }],
    // Without a '/', "localhost:5000" is Docker Hub's library/localhost with tag 5000, as docker reads it.
    ['localhost:5000', { registry: 'docker.io', repository: 'library/localhost', tag: '5000' }],
    // The first component is a registry when it has '.', ':', is localhost, or has uppercase.
    ['localhost/app', { registry: 'localhost', repository: 'app' }],
    ['localhost:5000/app', { registry: 'localhost:5000', repository: 'app' }],
    ['127.0.0.1:5000/team/app:1.0', { registry: '127.0.0.1:5000', repository: 'team/app', tag: '1.0' }],
    ['registry.example.com/app', { registry: 'registry.example.com', repository: 'app' }],
    ['host:443/app', { registry: 'host:443', repository: 'app' }],
    ['[::1]:5000/app', { registry: '[::1]:5000', repository: 'app' }],
    ['[2001:db8::1]/app', { registry: '[2001:db8::1]', repository: 'app' }],
    ['Registry/app', { registry: 'Registry', repository: 'app' }],
    ['my-registry.local/a/b', { registry: 'my-registry.local', repository: 'a/b' }],
    // Separators inside path components.
    ['a.b/c_d/e__f/g-h/i--j', { registry: 'a.b', repository: 'c_d/e__f/g-h/i--j' }],
    ['x/a0/0a', { registry: 'docker.io', repository: 'x/a0/0a' }],
    // Tags.
    ['app:_x', { registry: 'docker.io', repository: 'library/app', tag: '_x' }],
    ['app:V1.2-rc.3_b', { registry: 'docker.io', repository: 'library/app', tag: 'V1.2-rc.3_b' }],
    ['app:' + 'a'.repeat(128), { registry: 'docker.io', repository: 'library/app', tag: 'a'.repeat(128) }],
    // Digests.
    [`app@${SHA}`, { registry: 'docker.io', repository: 'library/app', digest: SHA }],
    [`app:1@${SHA}`, { registry: 'docker.io', repository: 'library/app', tag: '1', digest: SHA }],
    [`localhost:5000/app@${SHA}`, { registry: 'localhost:5000', repository: 'app', digest: SHA }],
    [
      'app@sha512:' + 'b'.repeat(128),
      { registry: 'docker.io', repository: 'library/app', digest: 'sha512:' + 'b'.repeat(128) },
    ],
  ])('%s', (input, expected) => {
    expect(parseImageReference(input)).toStrictEqual(expected);
  });

  test('accepts a name of exactly 255 characters', () => {
    const repo = 'a'.repeat(255 - 'reg.io/'.length);
    expect(parseImageReference(`reg.io/${repo}`).repository).toBe(repo);
  });

  test.each<[string, RegExp]>([
    ['', /empty/],
    ['a'.repeat(64), /image ID, not a repository name/],
    ['App', /repository name "library\/App" must be lowercase/],
    ['user/App', /repository name "user\/App" must be lowercase/],
    ['localhost:5000/Team/app', /must be lowercase/],
    [':1.0', /repository name is empty/],
    [`@${SHA}`, /repository name is empty/],
    ['app:', /tag is empty/],
    ['app:.x', /tag ".x" is invalid/],
    ['app:-x', /tag "-x" is invalid/],
    ['app:a+b', /tag "a\+b" is invalid/],
    ['app:' + 'a'.repeat(129), /tag .* is invalid/],
    ['app:1:2', /tag "1:2" is invalid/],
    ['localhost:5000/app:1.0:2', /tag "1.0:2" is invalid/],
    ['app@', /digest is empty/],
    ['app@sha256', /must be algorithm:hex/],
    ['app@sha256:abc', /sha256 digest must be 64 lowercase hex digits/],
    ['app@sha256:' + 'A'.repeat(64), /64 lowercase hex digits/],
    ['app@sha256:' + 'g'.repeat(64), /64 lowercase hex digits/],
    ['app@md5:' + 'a'.repeat(32), /unsupported digest algorithm "md5"/],
    [`app@${SHA}@${SHA}`, /must be algorithm:hex/],
    ['/app', /empty component/],
    ['app/', /empty component/],
    ['a//b', /empty component/],
    ['localhost:5000/', /empty component/],
    ['a/-b', /component "-b" is invalid/],
    ['a/b-', /component "b-" is invalid/],
    ['a/b..c', /component "b..c" is invalid/],
    ['a/b___c', /component "b___c" is invalid/],
    ['a/b._c', /component "b._c" is invalid/],
    ['a/.b', /component ".b" is invalid/],
    ['a/b c', /component "b c" is invalid/],
    ['a/b\nc', /component "b\\nc" is invalid/],
    ['-reg.io/app', /registry "-reg.io" is not a valid host\[:port\]/],
    ['reg-.io/app', /registry "reg-.io" is not a valid/],
    ['reg..io/app', /registry "reg..io" is not a valid/],
    ['reg.io:port/app', /registry "reg.io:port" is not a valid/],
    ['reg.io:/app', /registry "reg.io:" is not a valid/],
    ['[::1/app', /registry "\[::1" is not a valid/],
    ['a:b/c', /registry "a:b" is not a valid/],
    ['reg_io.com/app', /registry "reg_io.com" is not a valid/],
    ['reg.io/' + 'a'.repeat(249), /name is 256 characters long; at most 255 allowed/],
    // The Docker Hub prefixes count towards the limit, as they do in docker.
    ['a'.repeat(240), /name is 258 characters long/],
  ])('rejects %j (%s)', (input, message) => {
    expect(() => parseImageReference(input)).toThrow(InvalidReferenceError);
    expect(() => parseImageReference(input)).toThrow(message);
  });

  test('messages quote the input', () => {
    expect(() => parseImageReference('App')).toThrow('invalid image reference "App": ');
  });

  test('rejects non-strings', () => {
    expect(() => parseImageReference(null as unknown as string)).toThrow(InvalidReferenceError);
  });

  test('InvalidReferenceError is an Error with its own name', () => {
    expect(new InvalidReferenceError('x')).toBeInstanceOf(Error);
    expect(new InvalidReferenceError('x').name).toBe('InvalidReferenceError');
  });
});

describe('parseTagReference', () => {
  test.each<[string, ImageReference & { tag: string }]>([
    ['app', { registry: 'docker.io', repository: 'library/app', tag: 'latest' }],
    ['127.0.0.1:5000/team/app', { registry: '127.0.0.1:5000', repository: 'team/app', tag: 'latest' }],
    ['127.0.0.1:5000/team/app:1.0', { registry: '127.0.0.1:5000', repository: 'team/app', tag: '1.0' }],
  ])('%s', (input, expected) => {
    expect(parseTagReference(input)).toStrictEqual(expected);
  });

  test.each<[string, RegExp]>([
    [`app@${SHA}`, /published under a tag, not a digest/],
    [`app:1.0@${SHA}`, /published under a tag, not a digest/],
    ['App:1.0', /must be lowercase/],
    ['app:', /tag is empty/],
  ])('rejects %s', (input, message) => {
    expect(() => parseTagReference(input)).toThrow(InvalidReferenceError);
    expect(() => parseTagReference(input)).toThrow(message);
  });
});

describe('formatImageReference', () => {
  test.each<[ImageReference, string]>([
    [{ registry: '127.0.0.1:5000', repository: 'team/app', tag: '1.0' }, '127.0.0.1:5000/team/app:1.0'],
    [{ registry: 'docker.io', repository: 'library/app' }, 'docker.io/library/app'],
    [{ registry: 'r.io', repository: 'app', digest: SHA }, `r.io/app@${SHA}`],
    [{ registry: 'r.io', repository: 'app', tag: 't', digest: SHA }, `r.io/app:t@${SHA}`],
  ])('%j -> %s', (ref, expected) => {
    expect(formatImageReference(ref)).toBe(expected);
  });

  test.each([
    ['app', 'docker.io/library/app'],
    ['user/app:1', 'docker.io/user/app:1'],
    ['index.docker.io/app', 'docker.io/library/app'],
    ['localhost:5000/a/b:c', 'localhost:5000/a/b:c'],
    [`[::1]:5000/app:1@${SHA}`, `[::1]:5000/app:1@${SHA}`],
  ])('canonicalizes %s -> %s, and the canonical form parses to the same reference', (input, canonical) => {
    const ref = parseImageReference(input);
    expect(formatImageReference(ref)).toBe(canonical);
    expect(parseImageReference(canonical)).toStrictEqual(ref);
  });
});

describe('isValidTag', () => {
  test.each<[unknown, boolean]>([
    ['latest', true],
    ['1.0', true],
    ['v1.2.3-rc.1', true],
    ['_', true],
    ['A', true],
    ['a'.repeat(128), true],
    ['a'.repeat(129), false],
    ['', false],
    ['.a', false],
    ['-a', false],
    ['a:b', false],
    ['a/b', false],
    ['a b', false],
    ['é', false],
    ['a\n', false],
    [undefined, false],
    [1, false],
  ])('%j -> %s', (tag, expected) => {
    expect(isValidTag(tag as string)).toBe(expected);
  });
});
