import { quote } from './quote';

/** An OCI platform, normalized. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** A platform string or object the farm cannot build for, with a message naming what is wrong. */
export class InvalidPlatformError extends Error {
  override name = 'InvalidPlatformError';
}

/** Architectures the farm builds for, in OCI (GOARCH) spelling. */
export const KNOWN_ARCHITECTURES: readonly string[] = [
  'amd64',
  'arm64',
  'arm',
  '386',
  'ppc64le',
  's390x',
  'riscv64',
  'mips64le',
  'loong64',
];

interface ArchAlias {
  architecture: string;
  /** Some names (armhf, armv7l ...) also say which variant they are. */
  variant?: string;
}

// Kernel (`uname -m`), Debian and GOARCH spellings in one table, so a platform string and a host's
// machine name normalize the same way. Lookups go through a Map: no prototype keys.
const ARCH_ALIASES: ReadonlyMap<string, ArchAlias> = new Map<string, ArchAlias>([
  ...KNOWN_ARCHITECTURES.map((a): [string, ArchAlias] => [a, { architecture: a }]),
  ['x86_64', { architecture: 'amd64' }],
  ['x86-64', { architecture: 'amd64' }],
  ['aarch64', { architecture: 'arm64' }],
  ['armhf', { architecture: 'arm', variant: 'v7' }],
  // containerd's choice; Debian's armel baseline is older, but v6 is what pulls will ask for.
  ['armel', { architecture: 'arm', variant: 'v6' }],
  ['armv7l', { architecture: 'arm', variant: 'v7' }],
  ['armv7', { architecture: 'arm', variant: 'v7' }],
  // A 32-bit userland on an ARMv8 kernel: it runs v7 binaries.
  ['armv8l', { architecture: 'arm', variant: 'v7' }],
  ['armv6l', { architecture: 'arm', variant: 'v6' }],
  ['armv6', { architecture: 'arm', variant: 'v6' }],
  ['armv5l', { architecture: 'arm', variant: 'v5' }],
  ['armv5tel', { architecture: 'arm', variant: 'v5' }],
  ['armv5tejl', { architecture: 'arm', variant: 'v5' }],
  ['i386', { architecture: '386' }],
  ['i486', { architecture: '386' }],
  ['i586', { architecture: '386' }],
  ['i686', { architecture: '386' }],
  ['ppc64el', { architecture: 'ppc64le' }],
  ['mips64el', { architecture: 'mips64le' }],
  ['loongarch64', { architecture: 'loong64' }],
]);

/** Variant spellings accepted per architecture; `undefined` means "no variant" in the result. */
const VARIANTS: ReadonlyMap<string, ReadonlyMap<string | undefined, string | undefined>> = new Map([
  // As containerd: a bare "arm" is v7, and digits alone mean the v-prefixed variant.
  [
    'arm',
    new Map<string | undefined, string | undefined>([
      [undefined, 'v7'],
      ['v7', 'v7'],
      ['7', 'v7'],
      ['v6', 'v6'],
      ['6', 'v6'],
      ['v5', 'v5'],
      ['5', 'v5'],
    ]),
  ],
  // arm64 has a single variant in practice, so the normal form omits it (linux/arm64/v8 == linux/arm64).
  [
    'arm64',
    new Map<string | undefined, string | undefined>([
      [undefined, undefined],
      ['v8', undefined],
      ['8', undefined],
    ]),
  ],
  // v1 is the amd64 baseline, so it is the same as no variant.
  [
    'amd64',
    new Map<string | undefined, string | undefined>([
      [undefined, undefined],
      ['v1', undefined],
      ['v2', 'v2'],
      ['v3', 'v3'],
      ['v4', 'v4'],
    ]),
  ],
]);

const ALLOWED_VARIANTS_TEXT: ReadonlyMap<string, string> = new Map([
  ['arm', 'v5, v6 or v7 (v7 when omitted)'],
  ['arm64', 'v8 or none'],
  ['amd64', 'v1 (same as none), v2, v3 or v4'],
]);

// containerd's platform specifier component grammar.
const COMPONENT = /^[A-Za-z0-9_-]+$/;

/**
 * Parse `os/arch[/variant]` and normalize it the way containerd's `platforms.Normalize` does:
 * case-insensitive, `x86_64`→`amd64`, `aarch64`→`arm64`, `armv7l`/`armhf`→`arm/v7`,
 * `i386`/`i686`→`386`, `linux/arm`→`linux/arm/v7`, `linux/arm64/v8`→`linux/arm64`,
 * `linux/amd64/v1`→`linux/amd64`.
 *
 * Unlike containerd it rejects what the farm cannot build: an os other than linux, unknown
 * architectures or variants, a missing os (`amd64`), empty components, more than three parts.
 *
 * @throws InvalidPlatformError with a message naming the bad part.
 */
export function parsePlatform(input: string): Platform {
  if (typeof input !== 'string' || input === '') {
    throw new InvalidPlatformError('platform is empty: expected os/arch[/variant], e.g. linux/amd64');
  }
  const parts = input.split('/');
  if (parts.length > 3) {
    throw invalid(input, `${parts.length} parts: expected os/arch[/variant], e.g. linux/arm/v7`);
  }
  if (parts.length === 1) {
    const alone = input.toLowerCase();
    if (alone === 'linux') throw invalid(input, 'no architecture: expected os/arch, e.g. linux/amd64');
    const arch = ARCH_ALIASES.get(alone);
    if (arch && COMPONENT.test(input)) {
      throw invalid(input, `no operating system: write linux/${formatArch(arch)}`);
    }
    throw invalid(input, 'expected os/arch[/variant], e.g. linux/amd64');
  }
  return normalizeFields(input, parts[0], parts[1], parts[2]);
}

/**
 * Check and normalize a platform object (from a job payload, a manifest, an agent's report), with
 * the same rules as {@link parsePlatform}. A missing or empty variant means none.
 *
 * @throws InvalidPlatformError
 */
export function normalizePlatform(p: Platform): Platform {
  if (
    typeof p !== 'object' ||
    p === null ||
    typeof p.os !== 'string' ||
    typeof p.architecture !== 'string' ||
    (p.variant !== undefined && p.variant !== null && typeof p.variant !== 'string')
  ) {
    throw new InvalidPlatformError('platform must be an object {os: string, architecture: string, variant?: string}');
  }
  return normalizeFields(formatPlatform(p), p.os, p.architecture, p.variant || undefined);
}

/** `os/arch[/variant]`, e.g. "linux/arm/v7". Formats the fields as given: normalize first if unsure. */
export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/**
 * The platform of a host from its kernel machine name (`uname -m`, `os.machine()`): x86_64,
 * aarch64, armv7l, armv6l, armv5tel, i686, ppc64le, s390x, riscv64, loongarch64 ...
 *
 * @param os the host's OS; only linux is accepted.
 * @throws InvalidPlatformError for machine names it does not know (e.g. "mips64", whose
 *   endianness `uname` does not tell): such a host needs its platform given explicitly.
 */
export function platformFromMachine(machine: string, os = 'linux'): Platform {
  const name = typeof machine === 'string' ? machine.trim() : '';
  if (name === '') throw new InvalidPlatformError('machine name is empty');
  if (!COMPONENT.test(name) || !ARCH_ALIASES.has(name.toLowerCase())) {
    throw new InvalidPlatformError(
      `unknown machine name ${quote(name)}: give the host's platform explicitly (e.g. linux/arm64); ` +
        `known architectures: ${KNOWN_ARCHITECTURES.join(', ')}`,
    );
  }
  return normalizeFields(`${os}/${name}`, os, name, undefined);
}

/** BullMQ queue name for a platform: "build.linux.amd64", "build.linux.arm.v7". Normalizes first. */
export function platformQueueName(p: Platform | string): string {
  const n = typeof p === 'string' ? parsePlatform(p) : normalizePlatform(p);
  return ['build', n.os, n.architecture, ...(n.variant ? [n.variant] : [])].join('.');
}

/**
 * Whether two platforms are the same after normalization (linux/arm64 == linux/arm64/v8).
 * Never throws: platforms the farm does not build (e.g. windows/amd64) compare by their
 * lowercased fields.
 */
export function samePlatform(a: Platform, b: Platform): boolean {
  return platformKey(a) === platformKey(b);
}

/**
 * Normalize and dedupe, keeping the first occurrence's position:
 * [linux/arm64, linux/arm64/v8] -> [linux/arm64].
 *
 * @throws InvalidPlatformError if any platform is invalid.
 */
export function uniquePlatforms(ps: Platform[]): Platform[] {
  const seen = new Map<string, Platform>();
  for (const p of ps) {
    const n = normalizePlatform(p);
    const key = formatPlatform(n);
    if (!seen.has(key)) seen.set(key, n);
  }
  return [...seen.values()];
}

function normalizeFields(what: string, rawOs: string, rawArch: string, rawVariant: string | undefined): Platform {
  for (const part of [rawOs, rawArch, ...(rawVariant === undefined ? [] : [rawVariant])]) {
    if (part === '') throw invalid(what, "empty component (a doubled, leading or trailing '/')");
    if (!COMPONENT.test(part)) {
      throw invalid(what, `component ${quote(part)} may contain only letters, digits, '_' and '-'`);
    }
  }
  const os = rawOs.toLowerCase();
  if (os !== 'linux') {
    throw invalid(what, `unsupported operating system ${quote(rawOs)}: the farm builds linux images only`);
  }
  const alias = ARCH_ALIASES.get(rawArch.toLowerCase());
  if (!alias) {
    throw invalid(what, `unknown architecture ${quote(rawArch)}; known: ${KNOWN_ARCHITECTURES.join(', ')}`);
  }
  const { architecture } = alias;
  const variants = VARIANTS.get(architecture);
  const given = rawVariant?.toLowerCase();
  if (!variants) {
    if (given !== undefined) throw invalid(what, `${architecture} has no variants`);
    return { os, architecture };
  }
  if (given !== undefined && !variants.has(given)) {
    throw invalid(
      what,
      `unknown ${architecture} variant ${quote(rawVariant ?? '')}; allowed: ${ALLOWED_VARIANTS_TEXT.get(architecture)}`,
    );
  }
  let variant = variants.get(given);
  if (alias.variant !== undefined) {
    // "armhf" already says v7: an explicit variant may only repeat it.
    if (given !== undefined && variant !== alias.variant) {
      throw invalid(
        what,
        `${quote(rawArch)} means ${formatArch(alias)}, which contradicts variant ${quote(rawVariant ?? '')}`,
      );
    }
    variant = alias.variant;
  }
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

function platformKey(p: Platform): string {
  try {
    return formatPlatform(normalizePlatform(p));
  } catch (e) {
    if (!(e instanceof InvalidPlatformError)) throw e;
    return `${String(p?.os)}/${String(p?.architecture)}/${String(p?.variant || '')}`.toLowerCase();
  }
}

function formatArch(a: ArchAlias): string {
  const variant = a.variant ?? VARIANTS.get(a.architecture)?.get(undefined);
  return variant ? `${a.architecture}/${variant}` : a.architecture;
}

function invalid(input: string, reason: string): InvalidPlatformError {
  return new InvalidPlatformError(`invalid platform ${quote(input)}: ${reason}`);
}
