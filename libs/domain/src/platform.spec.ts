import {
  formatPlatform,
  InvalidPlatformError,
  normalizePlatform,
  parsePlatform,
  Platform,
  platformFromMachine,
  platformQueueName,
  samePlatform,
  uniquePlatforms,
} from './platform';

describe('parsePlatform', () => {
  test.each<[string, string]>([
    ['linux/amd64', 'linux/amd64'],
    ['linux/x86_64', 'linux/amd64'],
    ['linux/x86-64', 'linux/amd64'],
    ['linux/amd64/v1', 'linux/amd64'],
    ['linux/amd64/v2', 'linux/amd64/v2'],
    ['linux/amd64/v3', 'linux/amd64/v3'],
    ['linux/amd64/v4', 'linux/amd64/v4'],
    ['linux/arm64', 'linux/arm64'],
    ['linux/aarch64', 'linux/arm64'],
    ['linux/arm64/v8', 'linux/arm64'],
    ['linux/arm64/8', 'linux/arm64'],
    ['linux/aarch64/v8', 'linux/arm64'],
    ['linux/arm', 'linux/arm/v7'],
    ['linux/arm/v7', 'linux/arm/v7'],
    ['linux/arm/7', 'linux/arm/v7'],
    ['linux/arm/v6', 'linux/arm/v6'],
    ['linux/arm/6', 'linux/arm/v6'],
    ['linux/arm/v5', 'linux/arm/v5'],
    ['linux/arm/5', 'linux/arm/v5'],
    ['linux/armhf', 'linux/arm/v7'],
    ['linux/armhf/v7', 'linux/arm/v7'],
    ['linux/armel', 'linux/arm/v6'],
    ['linux/armv7l', 'linux/arm/v7'],
    ['linux/armv6l', 'linux/arm/v6'],
    ['linux/386', 'linux/386'],
    ['linux/i386', 'linux/386'],
    ['linux/i686', 'linux/386'],
    ['linux/ppc64le', 'linux/ppc64le'],
    ['linux/ppc64el', 'linux/ppc64le'],
    ['linux/s390x', 'linux/s390x'],
    ['linux/riscv64', 'linux/riscv64'],
    ['linux/mips64le', 'linux/mips64le'],
    ['linux/mips64el', 'linux/mips64le'],
    ['linux/loong64', 'linux/loong64'],
    ['linux/loongarch64', 'linux/loong64'],
    // Case-insensitive, as containerd's Normalize lowercases.
    ['Linux/AMD64', 'linux/amd64'],
    ['LINUX/ARM/V7', 'linux/arm/v7'],
    ['linux/X86_64', 'linux/amd64'],
  ])('%s -> %s', (input, expected) => {
    expect(formatPlatform(parsePlatform(input))).toBe(expected);
  });

  test('returns plain objects without an undefined variant key', () => {
    expect(parsePlatform('linux/arm64/v8')).toStrictEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('linux/arm')).toStrictEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
  });

  test.each<[string, RegExp]>([
    ['', /empty/],
    ['amd64', /no operating system: write linux\/amd64/],
    ['x86_64', /no operating system: write linux\/amd64/],
    ['armv7l', /no operating system: write linux\/arm\/v7/],
    ['arm', /no operating system: write linux\/arm\/v7/],
    ['linux', /no architecture/],
    ['x86', /expected os\/arch/],
    ['linux//arm64', /empty component/],
    ['/linux/amd64', /empty component/],
    ['linux/amd64/', /empty component/],
    ['linux/', /empty component/],
    ['/amd64', /empty component/],
    ['linux/arm/v7/', /4 parts/],
    ['linux/arm/v7/extra', /4 parts/],
    ['linux/x86', /unknown architecture "x86"; known: amd64, arm64, arm, 386/],
    ['linux/mips64', /unknown architecture "mips64"/],
    ['linux/sparc64', /unknown architecture/],
    ['windows/amd64', /unsupported operating system "windows": the farm builds linux images only/],
    ['darwin/arm64', /linux images only/],
    ['freebsd/amd64', /linux images only/],
    ['linux/arm/v8', /unknown arm variant "v8"; allowed: v5, v6 or v7/],
    ['linux/arm/v4', /unknown arm variant/],
    ['linux/arm64/v9', /unknown arm64 variant "v9"/],
    ['linux/amd64/v5', /unknown amd64 variant "v5"/],
    ['linux/amd64/2', /unknown amd64 variant "2"/],
    ['linux/386/v7', /386 has no variants/],
    ['linux/s390x/v1', /s390x has no variants/],
    ['linux/armhf/v6', /"armhf" means arm\/v7, which contradicts variant "v6"/],
    ['linux/armv6l/v7', /contradicts/],
    ['linux/*', /may contain only letters, digits/],
    [' linux/amd64', /may contain only letters, digits/],
    ['linux/amd64 ', /may contain only letters, digits/],
    ['linux/arm64/v8.0', /may contain only letters, digits/],
    ['linux(10.0)/amd64', /may contain only letters, digits/],
    ['linux/__proto__', /unknown architecture/],
    ['linux/constructor', /unknown architecture/],
  ])('rejects %j (%s)', (input, message) => {
    expect(() => parsePlatform(input)).toThrow(InvalidPlatformError);
    expect(() => parsePlatform(input)).toThrow(message);
  });

  test('error messages quote the input', () => {
    expect(() => parsePlatform('linux/x86')).toThrow('invalid platform "linux/x86": ');
  });

  test('error messages cut very long input short', () => {
    const long = `linux/${'a'.repeat(10_000)}`;
    let message = '';
    try {
      parsePlatform(long);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/unknown architecture/);
    expect(message.length).toBeLessThan(400);
  });

  test('rejects non-strings', () => {
    expect(() => parsePlatform(undefined as unknown as string)).toThrow(InvalidPlatformError);
    expect(() => parsePlatform(42 as unknown as string)).toThrow(InvalidPlatformError);
  });

  test('InvalidPlatformError is an Error with its own name', () => {
    const e = new InvalidPlatformError('x');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('InvalidPlatformError');
  });
});

describe('normalizePlatform', () => {
  test.each<[Platform, Platform]>([
    [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'amd64' },
    ],
    [
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
      { os: 'linux', architecture: 'arm64' },
    ],
    [
      { os: 'linux', architecture: 'arm' },
      { os: 'linux', architecture: 'arm', variant: 'v7' },
    ],
    [
      { os: 'linux', architecture: 'arm', variant: '' },
      { os: 'linux', architecture: 'arm', variant: 'v7' },
    ],
    [
      { os: 'linux', architecture: 'amd64', variant: '' },
      { os: 'linux', architecture: 'amd64' },
    ],
    [
      { os: 'Linux', architecture: 'aarch64' },
      { os: 'linux', architecture: 'arm64' },
    ],
    [
      { os: 'linux', architecture: 'armv7l' },
      { os: 'linux', architecture: 'arm', variant: 'v7' },
    ],
  ])('%j -> %j', (input, expected) => {
    expect(normalizePlatform(input)).toStrictEqual(expected);
  });

  test.each<[unknown, RegExp]>([
    [null, /must be an object/],
    ['linux/amd64', /must be an object/],
    [{ os: 'linux' }, /must be an object/],
    [{ os: 'linux', architecture: 64 }, /must be an object/],
    [{ os: 'linux', architecture: 'arm', variant: 7 }, /must be an object/],
    [{ os: '', architecture: 'amd64' }, /empty component/],
    [{ os: 'linux', architecture: '' }, /empty component/],
    [{ os: 'linux', architecture: 'amd64/v2' }, /may contain only/],
    [{ os: 'windows', architecture: 'amd64' }, /linux images only/],
    [{ os: 'linux', architecture: 'arm', variant: 'v8' }, /unknown arm variant/],
  ])('rejects %j', (input, message) => {
    expect(() => normalizePlatform(input as Platform)).toThrow(InvalidPlatformError);
    expect(() => normalizePlatform(input as Platform)).toThrow(message);
  });
});

describe('formatPlatform', () => {
  test.each<[Platform, string]>([
    [{ os: 'linux', architecture: 'amd64' }, 'linux/amd64'],
    [{ os: 'linux', architecture: 'arm', variant: 'v7' }, 'linux/arm/v7'],
    [{ os: 'linux', architecture: 'amd64', variant: '' }, 'linux/amd64'],
    // Formats what it is given; it does not validate.
    [{ os: 'windows', architecture: 'amd64' }, 'windows/amd64'],
  ])('%j -> %s', (p, expected) => {
    expect(formatPlatform(p)).toBe(expected);
  });

  test('round-trips every canonical platform', () => {
    for (const s of ['linux/amd64', 'linux/amd64/v3', 'linux/arm64', 'linux/arm/v6', 'linux/386', 'linux/riscv64']) {
      expect(formatPlatform(parsePlatform(s))).toBe(s);
    }
  });
});

describe('platformFromMachine', () => {
  test.each<[string, string]>([
    ['x86_64', 'linux/amd64'],
    ['amd64', 'linux/amd64'],
    ['aarch64', 'linux/arm64'],
    ['arm64', 'linux/arm64'],
    ['armv7l', 'linux/arm/v7'],
    ['armv8l', 'linux/arm/v7'],
    ['armv6l', 'linux/arm/v6'],
    ['armv5tel', 'linux/arm/v5'],
    ['armv5tejl', 'linux/arm/v5'],
    ['i386', 'linux/386'],
    ['i486', 'linux/386'],
    ['i586', 'linux/386'],
    ['i686', 'linux/386'],
    ['ppc64le', 'linux/ppc64le'],
    ['s390x', 'linux/s390x'],
    ['riscv64', 'linux/riscv64'],
    ['loongarch64', 'linux/loong64'],
    ['mips64el', 'linux/mips64le'],
    ['x86_64\n', 'linux/amd64'],
    ['X86_64', 'linux/amd64'],
  ])('%j -> %s', (machine, expected) => {
    expect(formatPlatform(platformFromMachine(machine))).toBe(expected);
  });

  test('takes the os', () => {
    expect(platformFromMachine('aarch64', 'Linux')).toStrictEqual({ os: 'linux', architecture: 'arm64' });
  });

  test.each<[string, string | undefined, RegExp]>([
    ['', undefined, /machine name is empty/],
    ['  ', undefined, /machine name is empty/],
    ['mips64', undefined, /unknown machine name "mips64": give the host's platform explicitly/],
    ['sparc64', undefined, /unknown machine name/],
    ['ppc64', undefined, /unknown machine name/],
    ['x86', undefined, /unknown machine name/],
    ['linux/amd64', undefined, /unknown machine name/],
    ['__proto__', undefined, /unknown machine name/],
    ['x86_64', 'darwin', /linux images only/],
  ])('rejects %j (os %s)', (machine, os, message) => {
    expect(() => platformFromMachine(machine, os)).toThrow(InvalidPlatformError);
    expect(() => platformFromMachine(machine, os)).toThrow(message);
  });
});

describe('platformQueueName', () => {
  test.each<[Platform | string, string]>([
    ['linux/amd64', 'build.linux.amd64'],
    ['linux/x86_64', 'build.linux.amd64'],
    ['linux/arm64/v8', 'build.linux.arm64'],
    ['linux/arm', 'build.linux.arm.v7'],
    ['linux/arm/v6', 'build.linux.arm.v6'],
    ['linux/amd64/v3', 'build.linux.amd64.v3'],
    [{ os: 'linux', architecture: 'arm', variant: 'v7' }, 'build.linux.arm.v7'],
    [{ os: 'linux', architecture: 'aarch64' }, 'build.linux.arm64'],
  ])('%j -> %s', (p, expected) => {
    expect(platformQueueName(p)).toBe(expected);
  });

  test.each<Platform | string>(['linux/x86', 'amd64', { os: 'windows', architecture: 'amd64' }])('rejects %j', (p) => {
    expect(() => platformQueueName(p)).toThrow(InvalidPlatformError);
  });
});

describe('samePlatform', () => {
  const p = (s: string): Platform => {
    const [os, architecture, variant] = s.split('/');
    return variant === undefined ? { os, architecture } : { os, architecture, variant };
  };
  test.each<[string, string, boolean]>([
    ['linux/amd64', 'linux/amd64', true],
    ['linux/arm64', 'linux/arm64/v8', true],
    ['linux/aarch64', 'linux/arm64', true],
    ['linux/arm', 'linux/arm/v7', true],
    ['linux/armhf', 'linux/arm/v7', true],
    ['linux/amd64/v1', 'linux/amd64', true],
    ['Linux/AMD64', 'linux/amd64', true],
    ['linux/arm/v6', 'linux/arm/v7', false],
    ['linux/amd64', 'linux/amd64/v2', false],
    ['linux/amd64', 'linux/arm64', false],
    // Platforms the farm does not build compare without throwing.
    ['windows/amd64', 'windows/amd64', true],
    ['windows/amd64', 'Windows/AMD64', true],
    ['windows/amd64', 'linux/amd64', false],
    ['unknown/unknown', 'linux/amd64', false],
  ])('%s vs %s -> %s', (a, b, expected) => {
    expect(samePlatform(p(a), p(b))).toBe(expected);
    expect(samePlatform(p(b), p(a))).toBe(expected);
  });
});

describe('uniquePlatforms', () => {
  test.each<[string[], string[]]>([
    [[], []],
    [['linux/amd64'], ['linux/amd64']],
    [['linux/arm64', 'linux/arm64/v8'], ['linux/arm64']],
    [
      ['linux/arm64/v8', 'linux/amd64', 'linux/aarch64', 'linux/x86_64'],
      ['linux/arm64', 'linux/amd64'],
    ],
    [
      ['linux/arm', 'linux/arm/v6', 'linux/armhf', 'linux/arm/v7'],
      ['linux/arm/v7', 'linux/arm/v6'],
    ],
    [
      ['linux/amd64/v2', 'linux/amd64', 'linux/amd64/v1'],
      ['linux/amd64/v2', 'linux/amd64'],
    ],
  ])('%j -> %j', (input, expected) => {
    const ps = input.map((s) => {
      const [os, architecture, variant] = s.split('/');
      return { os, architecture, variant };
    });
    expect(uniquePlatforms(ps).map(formatPlatform)).toEqual(expected);
  });

  test('returns normalized platforms', () => {
    expect(uniquePlatforms([{ os: 'linux', architecture: 'aarch64', variant: 'v8' }])).toStrictEqual([
      { os: 'linux', architecture: 'arm64' },
    ]);
  });

  test('rejects an invalid platform', () => {
    expect(() =>
      uniquePlatforms([
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'x86' },
      ]),
    ).toThrow(InvalidPlatformError);
  });
});
