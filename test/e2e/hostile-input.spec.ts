import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, type TestFarm } from '../helpers/farm';
import { fixture, forgeHeaders, type Forge } from '../helpers/webhooks';

/**
 * Hostile input, in numbers (issue 5): a property-based battery sends generated invalid or
 * hostile requests to every route of a real farm, found in its OpenAPI document (so routes added
 * later are covered without editing this file), and to every forge's webhook with the real
 * fixture payloads. Every answer must be a 4xx with the documented error body
 * `{"error":{"code","message","field"?}}`; the api must stay up, and nothing may be stored or
 * queued (every table's rows and the farm's BullMQ jobs are counted before and after).
 *
 * Each generated request is a valid request plus at least one fault that alone makes it invalid,
 * so a 2xx answer always means the api accepted something it should not have.
 */

jest.setTimeout(300_000);

/** At least this many requests in all (the issue asks for 1,000). */
const TOTAL_REQUESTS = 1_500;
/** Set HOSTILE_SEED to replay a run (each run prints its seed). */
const SEED = Number(process.env.HOSTILE_SEED ?? Date.now() % 2 ** 31);
const HOOK_SECRET = 'hostile-hook-secret-0123456789';
const ERROR_STATUS: Record<string, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unprocessable: 422,
  too_many_requests: 429,
  unavailable: 503,
};

// ---------------------------------------------------------------------------------------------
// The routes, from the OpenAPI document

interface Schema {
  type?: string;
  $ref?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  allOf?: Schema[];
}

interface Parameter {
  in: 'path' | 'query' | 'header';
  name: string;
  schema?: Schema;
}

interface Operation {
  method: string;
  /** OpenAPI path template, e.g. /v1/builds/{id} */
  path: string;
  params: Parameter[];
  body?: Schema;
  /** No bearer token needed (health, metrics, webhooks). */
  isPublic: boolean;
}

function resolve(schema: Schema | undefined, doc: any): Schema | undefined {
  if (!schema) return undefined;
  if (schema.$ref) return resolve(doc.components.schemas[schema.$ref.split('/').pop() as string], doc);
  if (schema.allOf?.length === 1) return resolve(schema.allOf[0], doc);
  return schema;
}

function operationsOf(doc: any): Operation[] {
  const operations: Operation[] = [];
  for (const [path, methods] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(methods)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
      const body = resolve(op.requestBody?.content?.['application/json']?.schema, doc);
      operations.push({
        method: method.toUpperCase(),
        path,
        params: (op.parameters ?? []).map((p: any) => ({ ...p, schema: resolve(p.schema, doc) })),
        body: body && { ...body, properties: mapValues(body.properties ?? {}, (s) => resolve(s, doc) as Schema) },
        isPublic: !(op.security ?? doc.security ?? []).some((s: object) => 'bearer' in s),
      });
    }
  }
  return operations;
}

function mapValues<T, U>(record: Record<string, T>, f: (value: T) => U): Record<string, U> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, f(v)]));
}

// ---------------------------------------------------------------------------------------------
// Hostile values

/** Strings that break parsers, logs, shells, git and paths; none is a valid id, ref or URL. */
const NASTY_STRINGS = [
  '',
  ' ',
  '-u',
  '--upload-pack=touch /tmp/pwned',
  '--upload-pack=touch',
  '-oProxyCommand=touch /tmp/pwned',
  'ext::sh -c touch% /tmp/pwned',
  'fd::3',
  'file:///etc/passwd',
  '../../../../etc/passwd',
  '..',
  '/etc/shadow',
  'a\u0000b',
  '\u0000',
  '%00',
  'line\nbreak',
  'cr\rlf',
  '\u202egnp.exe',
  '\ud800',
  '😀🏳️‍🌈',
  '$(id)',
  '`id`',
  '; rm -rf /',
  '\'; DROP TABLE "Build"; --',
  '${jndi:ldap://127.0.0.1/x}',
  '{{7*7}}',
  '<script>alert(1)</script>',
  '__proto__',
  'constructor',
  'http://169.254.169.254/latest/meta-data',
  'x'.repeat(70_000),
];

const nastyString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 32 }) },
);
/** Characters that no ref, path, URL, name or id the farm accepts may hold. */
const CONTROL = fc.constantFrom('\u0000', '\n', '\r', '\t', '\u001b', '\u007f', '\u0085');
const anything = fc.string({ maxLength: 24 });
const withControl = fc.tuple(anything, CONTROL, anything).map(([a, c, b]) => `${a}${c}${b}`);
const dashed = fc.tuple(fc.constantFrom('-', '--'), anything).map(([d, s]) => `${d}${s}`);
const tooLong = (max: number) => fc.integer({ min: max + 1, max: max + 70_000 }).map((n) => 'x'.repeat(n));
const notString = fc.oneof(fc.integer(), fc.boolean(), fc.constant([]), fc.constant({}), fc.double());

/** Invalid values for the fields of a build request that the farm checks for meaning. */
const BUILD_FIELD_FAULTS: Record<string, fc.Arbitrary<unknown>> = {
  repo: fc.oneof(
    fc.constantFrom(
      'ext::sh -c touch% /tmp/pwned',
      'ext::sh',
      'fd::3',
      '--upload-pack=touch /tmp/pwned',
      '-oProxyCommand=touch',
      'ssh://-oProxyCommand=touch/a/b',
      'host:-oProxyCommand=x',
      'file:///etc/passwd',
      'file:///srv/git/repo.git',
      '/srv/git/repo.git',
      './repo',
      'repo',
      'http://git.example.com/a/b.git',
      'ftp://git.example.com/a/b.git',
      'https://user:secret@git.example.com/a/b.git',
      'https://token@git.example.com/a/b.git',
      'https://git.example.com/a/%0a/b',
      'https://git.example.com/',
      '',
    ),
    dashed,
    withControl.map((s) => `https://git.example.com/${s}`),
    tooLong(2048).map((s) => `https://git.example.com/${s}`),
  ),
  ref: fc.oneof(
    dashed,
    withControl,
    fc
      .tuple(anything, fc.constantFrom('..', '~', '^', ':', '?', '*', '[', '\\', '@{', ' '), anything)
      .map((p) => p.join('')),
    fc.constantFrom('', '@', '/main', 'main/', 'a//b', 'main.', '.hidden', 'main.lock', '-u', '--upload-pack=x'),
    tooLong(255),
  ),
  commit: fc.oneof(
    fc.string().filter((s) => !/^[0-9a-f]{40}$/.test(s)),
    fc.constantFrom('A'.repeat(40), 'a'.repeat(39), 'a'.repeat(64), `-${'a'.repeat(39)}`, 'HEAD'),
  ),
  dockerfile: repoPathFault(),
  context: repoPathFault(),
  platforms: fc.oneof(
    fc.constant([]),
    fc.array(fc.constantFrom('linux/amd64', 'linux/arm64'), { minLength: 17, maxLength: 20 }),
    fc.constantFrom(['linux/amd64', 'linux/amd64'], ['linux/amd64', 'linux/x86_64'], ['linux/arm64', 'linux/aarch64']),
    fc
      .constantFrom('', 'linux', 'linux/', '/amd64', 'amd64', 'linux/amd64/v8/x', 'linux/../amd64', 'linux amd64', '-u')
      .map((p) => ['linux/amd64', p]),
    withControl.map((p) => [p]),
    tooLong(64).map((p) => [p]),
  ),
  tags: fc.oneof(
    fc.constant([]),
    fc
      .constantFrom(
        'UPPER/case:1',
        '127.0.0.1:5000/app:',
        '127.0.0.1:5000/app:-x',
        '127.0.0.1:5000/a b:1',
        '../x:1',
        '127.0.0.1:5000/app@sha256:zz',
        `127.0.0.1:5000/app@sha256:${'a'.repeat(64)}`,
        '',
        '-oops',
        `127.0.0.1:5000/app:${'x'.repeat(129)}`,
        'a'.repeat(64),
      )
      .map((t) => [t]),
    withControl.map((t) => [`127.0.0.1:5000/app:${t}`]),
    fc.array(fc.constant('127.0.0.1:5000/app:1'), { minLength: 33, maxLength: 40 }),
  ),
  labels: mapFault(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, 8192),
  secrets: mapFault(/^[A-Za-z0-9_.-]+$/, 65_536),
  buildArgs: mapFault(/^[A-Za-z_][A-Za-z0-9_]*$/, 8192),
  target: fc.oneof(fc.constant(''), tooLong(128), notString),
  requires: fc.oneof(
    fc.constantFrom(['UPPER'], ['-x'], ['a b'], [''], [1], 'large', ['x'.repeat(33)]),
    fc.array(fc.constant('large'), { minLength: 6, maxLength: 8 }),
  ),
  scheduleTimeout: fc.oneof(fc.constantFrom(0, -1, 1.5, '10', 86_401, 1e21, true), fc.integer({ max: 0 })),
};

/** Invalid values for the fields of a project. */
const PROJECT_FIELD_FAULTS: Record<string, fc.Arbitrary<unknown>> = {
  repo: BUILD_FIELD_FAULTS.repo!,
  dockerfile: BUILD_FIELD_FAULTS.dockerfile!,
  context: BUILD_FIELD_FAULTS.context!,
  platforms: BUILD_FIELD_FAULTS.platforms!,
  buildArgs: BUILD_FIELD_FAULTS.buildArgs!,
  tags: fc.oneof(
    fc.constant([]),
    fc
      .constantFrom('', '-x', '.x', 'a/b', 'a:b', 'a b', '{branch}{tag}', `x${'y'.repeat(128)}`, '{nope', 'UPPER/x:1')
      .map((t) => [t]),
    withControl.map((t) => [t]),
  ),
  image: fc.oneof(
    fc.constantFrom(
      '',
      '127.0.0.1:5000/app:1',
      `127.0.0.1:5000/app@sha256:${'a'.repeat(64)}`,
      'team/UPPER',
      '-x',
      'a b',
    ),
    withControl,
  ),
  name: fc.oneof(fc.constantFrom('', 'UPPER', '-x', '.x', '_x', 'a b', 'a/b', '../x', 'x'.repeat(64)), withControl),
  webhookSecret: fc.oneof(fc.string({ maxLength: 15 }), tooLong(256), notString),
  forge: fc.oneof(fc.constantFrom('GitHub', 'bitbucket', '', 'gitea '), notString),
  forgeApiUrl: fc.constantFrom(
    'ftp://forge.example',
    'javascript:alert(1)',
    'https://u:p@forge.example',
    'not a url',
    '',
  ),
};

/** Invalid query parameter values, by name, where the OpenAPI schema states no constraint. */
const QUERY_FAULTS: Record<string, fc.Arbitrary<string>> = {
  platform: fc.oneof(withControl, tooLong(64), fc.constantFrom('linux', '../x', 'linux/amd64/v8/x', '-u')),
  cursor: nastyString.filter((s) => !/^[0-9a-f-]{36}$/.test(s)),
  repo: tooLong(2048),
};

function repoPathFault(): fc.Arbitrary<unknown> {
  return fc.oneof(
    anything.map((s) => `../${s}`),
    anything.map((s) => `/${s}`),
    anything.map((s) => `a/../../${s}`),
    withControl,
    fc.constantFrom('', '..', '../../../../etc/passwd', '/etc/shadow', 'a/../..'),
    tooLong(1024),
  );
}

/** A map (buildArgs, labels, secrets) with a bad key, a non-string value, or a value too long. */
function mapFault(keyPattern: RegExp, maxValueLength: number): fc.Arbitrary<unknown> {
  const badKey = fc
    .oneof(nastyString, fc.constantFrom('1abc', 'a-b', 'A=B', 'a b', '-x', 'x'.repeat(129)))
    .filter((key) => !keyPattern.test(key) || key.length > 128);
  return fc.oneof(
    fc.tuple(badKey, fc.string({ maxLength: 8 })).map(([k, v]) => ({ [k]: v })),
    fc.tuple(fc.constant('GOOD_NAME'), fc.oneof(notString, fc.constant(null))).map(([k, v]) => ({ [k]: v })),
    tooLong(maxValueLength).map((v) => ({ GOOD_NAME: v })),
    fc.oneof(fc.constant([]), fc.string(), fc.integer()),
  );
}

/** A value of the wrong JSON type for `schema`. */
function wrongType(schema: Schema): fc.Arbitrary<unknown> {
  switch (schema.type) {
    case 'string':
      return fc.oneof(fc.integer(), fc.boolean(), fc.constant([]), fc.constant({}), fc.constant(['a']));
    case 'integer':
    case 'number':
      return fc.oneof(fc.constant('12'), fc.boolean(), fc.constant([]), fc.constant({}), fc.constant(0.5));
    case 'boolean':
      return fc.oneof(fc.constant('true'), fc.integer(), fc.constant({}));
    case 'array':
      return fc.oneof(fc.string(), fc.integer(), fc.constant({}), fc.constant([{}]), fc.constant([1, 2]));
    case 'object':
      return fc.oneof(fc.string(), fc.integer(), fc.constant([1]), fc.boolean());
    default:
      return fc.oneof(fc.constant({ deep: { deeper: [] } }), fc.constant([[]]));
  }
}

/** Values that break the constraints the schema states, if it states any. */
function constraintFaults(schema: Schema): fc.Arbitrary<unknown>[] {
  const faults: fc.Arbitrary<unknown>[] = [];
  if (schema.type === 'string') {
    if (schema.maxLength !== undefined) faults.push(tooLong(schema.maxLength));
    if (schema.minLength) faults.push(fc.string({ maxLength: schema.minLength - 1 }));
    if (schema.enum) faults.push(nastyString.filter((s) => !schema.enum!.includes(s)));
    if (schema.pattern) {
      const pattern = new RegExp(schema.pattern);
      faults.push(nastyString.filter((s) => !pattern.test(s)));
    }
  }
  if (schema.type === 'array') {
    if (schema.maxItems !== undefined) {
      faults.push(fc.array(fc.constant('x'), { minLength: schema.maxItems + 1, maxLength: schema.maxItems + 3 }));
    }
    if (schema.minItems) faults.push(fc.constant([]));
  }
  if (schema.type === 'integer' || schema.type === 'number') {
    if (schema.minimum !== undefined) faults.push(fc.integer({ min: -1e9, max: schema.minimum - 1 }));
    if (schema.maximum !== undefined) faults.push(fc.integer({ min: schema.maximum + 1, max: 2 ** 31 }));
  }
  return faults;
}

// ---------------------------------------------------------------------------------------------
// Requests

interface HostileRequest {
  /** The generated fault, for reading a failure. */
  fault: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

/** Known-good request bodies; a fault is then applied to one part. */
function validBodies(ctx: Context): Record<string, Record<string, unknown>> {
  return {
    'POST /v1/builds': {
      repo: 'https://git.example.com/team/app.git',
      commit: 'a'.repeat(40),
      platforms: ['linux/amd64'],
      tags: ['127.0.0.1:5000/hostile/app:1'],
    },
    'POST /v1/projects': {
      name: `hostile-${randomUUID().slice(0, 8)}`,
      repo: 'https://git.example.com/team/app.git',
      image: '127.0.0.1:5000/hostile/app',
      platforms: ['linux/amd64'],
      tags: ['{branch}'],
      webhookSecret: HOOK_SECRET,
    },
    'PATCH /v1/projects/{id}': {},
    'POST /v1/builds/{id}/cancel': {},
    'POST /v1/builds/{id}/retry': {},
    // New routes get a body made of their examples and required fields (and their faults).
    ...ctx.extraBodies,
  };
}

interface Context {
  farm: TestFarm;
  buildId: string;
  projectId: string;
  extraBodies: Record<string, Record<string, unknown>>;
}

/** A real id for a path parameter, so that faults elsewhere are what the api must notice. */
function realId(ctx: Context, path: string): string {
  if (path.startsWith('/v1/builds/')) return ctx.buildId;
  if (path.startsWith('/v1/projects/')) return ctx.projectId;
  return randomUUID();
}

/** Lone surrogates replaced: a URL cannot carry them (the api gets U+FFFD, as from a browser). */
function wellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

function fillPath(path: string, values: Record<string, string>): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(wellFormed(values[name] ?? '')));
}

const badPathValue = fc.oneof(
  nastyString.filter((s) => s !== ''),
  fc.uuid(),
  fc.constantFrom('..%2F..%2Fetc%2Fpasswd', '%E0%A4%A', 'not-a-uuid', '00000000-0000-0000-0000-000000000000'),
);

/** A hostile request for a REST route (webhooks have their own, see hookRequest). */
function restRequest(ctx: Context, op: Operation): fc.Arbitrary<HostileRequest> {
  const key = `${op.method} ${op.path}`;
  const base = structuredClone(validBodies(ctx)[key] ?? bodyFromSchema(op.body));
  const pathParams = op.params.filter((p) => p.in === 'path');
  const queryParams = op.params.filter((p) => p.in === 'query');
  const goodPath = fillPath(op.path, Object.fromEntries(pathParams.map((p) => [p.name, realId(ctx, op.path)])));
  const auth = { authorization: `Bearer ${ctx.farm.adminToken}` };
  const json = { 'content-type': 'application/json' };
  const request = (fault: string, parts: Partial<HostileRequest>): HostileRequest => ({
    fault,
    method: op.method,
    path: goodPath,
    headers: { ...auth, ...(op.body ? json : {}) },
    body: op.body ? JSON.stringify(base) : undefined,
    ...parts,
  });

  const faults: fc.Arbitrary<HostileRequest>[] = [];
  if (!op.isPublic) {
    faults.push(
      fc
        .oneof(
          fc.constant(undefined),
          fc.constantFrom('Bearer', 'Bearer ', `Basic ${ctx.farm.adminToken}`, `Bearer ${ctx.farm.adminToken}x`),
          fc.constant(`bearer  ${ctx.farm.adminToken.toUpperCase()}`),
          // fetch sends printable ASCII only in headers.
          fc.string({ maxLength: 64 }).map((t) => `Bearer ${t.replace(/[^\x20-\x7e]/g, '')}`),
          fc.constant(`Bearer ${'a'.repeat(8000)}`),
        )
        .map((value) => {
          const headers: Record<string, string> = op.body ? { ...json } : {};
          if (value !== undefined) headers.authorization = value;
          return request(`authorization ${JSON.stringify(value)?.slice(0, 40)}`, { headers });
        }),
    );
  }
  for (const param of pathParams) {
    faults.push(
      badPathValue.map((value) =>
        request(`path ${param.name}=${JSON.stringify(value.slice(0, 40))}`, {
          path: fillPath(op.path, {
            ...Object.fromEntries(pathParams.map((p) => [p.name, realId(ctx, op.path)])),
            [param.name]: value,
          }),
        }),
      ),
    );
  }
  if (queryParams.length > 0) {
    const valueFaults = queryParams
      .map((param) => ({
        name: param.name,
        values: [
          ...constraintFaults(param.schema ?? {}).map((a) => a.map(String)),
          ...(param.schema?.type === 'integer' ? [fc.constantFrom('1.5', 'ten', '1e3', '0x10', '-0', ' 5', '')] : []),
          ...(param.schema?.type === 'boolean' ? [fc.constantFrom('yes', 'TRUE', '2', '')] : []),
          ...(QUERY_FAULTS[param.name] ? [QUERY_FAULTS[param.name]!] : []),
        ],
      }))
      .filter(({ values }) => values.length > 0);
    const queryFault = fc.oneof(
      ...valueFaults.map(({ name, values }) =>
        fc.oneof(...values).map((value) => [[name, value]] as [string, string][]),
      ),
      // Unknown and repeated parameters, and prototype keys.
      fc.constantFrom<[string, string][]>(
        [['__proto__', 'x']],
        [['constructor[prototype][x]', '1']],
        [['unknown', '1']],
        [
          [queryParams[0]!.name, 'a'],
          [queryParams[0]!.name, 'b'],
        ],
        [[`${queryParams[0]!.name}[]`, 'x']],
        [[`${queryParams[0]!.name}[a]`, 'x']],
      ),
    );
    faults.push(
      queryFault.map((pairs) =>
        request(`query ${JSON.stringify(pairs).slice(0, 60)}`, {
          path: `${goodPath}?${new URLSearchParams(pairs).toString()}`,
        }),
      ),
    );
  }
  if (op.body) {
    const properties = Object.entries(op.body.properties ?? {});
    const fieldFaults = op.path.startsWith('/v1/builds')
      ? BUILD_FIELD_FAULTS
      : op.path.startsWith('/v1/projects')
        ? PROJECT_FIELD_FAULTS
        : {};
    const propertyFault = fc.oneof(
      ...properties.map(([name, schema]) =>
        fc
          .oneof(
            wrongType(schema),
            ...constraintFaults(schema),
            ...(fieldFaults[name] ? [fieldFaults[name]] : []),
            ...(op.body!.required?.includes(name) ? [fc.constant(null)] : []),
          )
          .map((value) => ({ fault: `${name}=${JSON.stringify(value)}`, body: { ...base, [name]: value } })),
      ),
      ...(op.body.required ?? []).map((name) =>
        fc.constant({
          fault: `without ${name}`,
          body: Object.fromEntries(Object.entries(base).filter(([k]) => k !== name)),
        }),
      ),
      // Fields the api does not know, prototype keys among them.
      fc
        .oneof(
          fc.constantFrom('status', 'id', 'digest', 'isAdmin', '__proto__', 'constructor'),
          fc.string({ minLength: 1 }),
        )
        .filter((name) => !(name in (op.body!.properties ?? {})))
        .map((name) => ({
          fault: `unknown field ${JSON.stringify(name)}`,
          body: { ...base, [name]: { polluted: true } },
        })),
    );
    faults.push(
      propertyFault.map(({ fault, body }) => request(`body ${fault.slice(0, 100)}`, { body: JSON.stringify(body) })),
    );
    faults.push(
      fc
        .oneof(
          fc.constantFrom(
            '{',
            '{"repo":',
            'not json',
            '[]',
            '[1,2]',
            '"a string"',
            '42',
            'true',
            '{"a":1}}',
            '\u0000',
            '{"__proto__":{"polluted":true}}',
            `{"constructor":{"prototype":{"polluted":true}}}`,
          ),
          // Not empty: an empty body is no body (a PATCH without changes).
          fc.string({ unit: 'binary', minLength: 1, maxLength: 64 }).filter((s) => !isJsonObject(s)),
        )
        .map((text) => request(`raw body ${JSON.stringify(text).slice(0, 60)}`, { body: text })),
      fc
        .constantFrom(
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          'application/xml',
        )
        .map((type) =>
          request(`content-type ${type}`, { headers: { ...auth, 'content-type': type }, body: JSON.stringify(base) }),
        ),
      // Over the 1 MB body limit.
      fc
        .constant(null)
        .map(() =>
          request('body over the size limit', { body: JSON.stringify({ ...base, padding: 'x'.repeat(1_100_000) }) }),
        ),
    );
    // A prototype key written literally, as JSON.stringify never writes it.
    faults.push(
      fc.constant(null).map(() =>
        request('body with a literal __proto__ key', {
          body: `{"__proto__":{"polluted":true},${JSON.stringify(base).slice(1)}`.replace(/,}$/, '}'),
        }),
      ),
    );
  } else if (op.method !== 'GET') {
    faults.push(
      fc.constantFrom('{', 'not json', '{"a":').map((text) =>
        request(`malformed JSON body on a route without one: ${text}`, {
          headers: { ...auth, 'content-type': 'application/json' },
          body: text,
        }),
      ),
    );
  }
  if (faults.length === 0) throw new Error(`${key}: no way to make this route's input invalid`);
  // A bad token is one fault among many: the others reach validation, where the bugs hide.
  return fc.oneof(...faults.map((arbitrary, i) => ({ arbitrary, weight: !op.isPublic && i === 0 ? 1 : 3 })));
}

function isJsonObject(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

/** For a route this battery does not know: its required fields, from their examples or types. */
function bodyFromSchema(schema: Schema | undefined): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const name of schema?.required ?? []) {
    const property = schema?.properties?.[name] ?? {};
    body[name] =
      (property as { example?: unknown }).example ??
      { string: 'x', integer: 1, number: 1, boolean: true, array: [], object: {} }[property.type ?? 'string'];
  }
  return body;
}

const HOOK_FIXTURES: Record<Forge, { event: string; file: string }[]> = {
  github: [
    { event: 'push', file: 'github/push-branch-created.json' },
    { event: 'push', file: 'github/push-tag-deleted.json' },
    { event: 'ping', file: 'github/ping.json' },
  ],
  gitlab: [
    { event: 'Push Hook', file: 'gitlab/push.json' },
    { event: 'Tag Push Hook', file: 'gitlab/tag-push.json' },
  ],
  gitea: [
    { event: 'push', file: 'gitea/push.json' },
    { event: 'create', file: 'gitea/tag-push.json' },
    { event: 'push', file: 'gitea/push-branch-created.json' },
  ],
};

/** The signature headers of each forge (GitLab's is the secret itself). */
const SIGNATURE_HEADER: Record<Forge, string> = {
  github: 'x-hub-signature-256',
  gitlab: 'x-gitlab-token',
  gitea: 'x-gitea-signature',
};

/** Where each forge's push payload names the commit to build. */
const COMMIT_FIELD: Record<Forge, string> = { github: 'after', gitlab: 'checkout_sha', gitea: 'after' };

/**
 * A push payload made invalid: `ref` not a string, or the commit not a SHA. (Other fields are
 * optional, and an unusual ref such as refs/notes/x is ignored with a 200 by design.)
 */
function malformedPush(forge: Forge, payload: Record<string, unknown>): fc.Arbitrary<Record<string, unknown>> {
  // Gitea's `create` (of a tag) names the commit `sha`.
  const commitField = 'sha' in payload ? 'sha' : COMMIT_FIELD[forge];
  return fc.oneof(
    fc.oneof(notString, fc.constant(null)).map((ref) => ({ ...payload, ref })),
    fc
      .oneof(
        notString,
        fc.constantFrom('-u', '--upload-pack=x', 'zz', 'A'.repeat(40), 'a'.repeat(39), 'HEAD'),
        withControl,
      )
      .map((commit) => ({ ...payload, [commitField]: commit })),
  );
}

/** Faults a signed, malformed delivery: the api records it as invalid (so replays get the same answer). */
const SIGNED_MALFORMED = 'signed malformed payload';

function hookRequest(ctx: Context): fc.Arbitrary<HostileRequest> {
  const forges = Object.keys(HOOK_FIXTURES) as Forge[];
  const delivery = fc
    .constantFrom(...forges)
    .chain((forge) =>
      fc.constantFrom(...HOOK_FIXTURES[forge]).map(({ event, file }) => ({ forge, event, body: fixture(file) })),
    );
  const to = (id: string, forge: string) =>
    `/v1/projects/${encodeURIComponent(wellFormed(id))}/hooks/${encodeURIComponent(wellFormed(forge))}`;
  const badSignature = delivery.chain(({ forge, event, body }) => {
    const signed = forgeHeaders(forge, event, body, HOOK_SECRET, randomUUID());
    const header = SIGNATURE_HEADER[forge];
    const without = Object.fromEntries(Object.entries(signed).filter(([k]) => k !== header));
    return fc
      .oneof(
        fc.constant({ fault: 'no signature', headers: without, body }),
        fc
          .uint8Array({ minLength: 32, maxLength: 32 })
          .map((bytes) => Buffer.from(bytes).toString('hex'))
          .map((h) => ({
            fault: 'random signature',
            headers: { ...without, [header]: forge === 'github' ? `sha256=${h}` : h },
            body,
          })),
        fc.constant({
          fault: 'signed with another secret',
          headers: forgeHeaders(forge, event, body, 'another-secret-0123456789', randomUUID()),
          body,
        }),
        fc
          .constantFrom('', 'sha1=abc', 'sha256=', `sha256=${'z'.repeat(64)}`, HOOK_SECRET.toUpperCase(), ' ')
          .map((value) => ({
            fault: `signature ${JSON.stringify(value)}`,
            headers: { ...without, [header]: value },
            body,
          })),
        // GitLab sends a token, not a signature of the body: a changed body is no bad signature there.
        ...(forge === 'gitlab'
          ? []
          : [
              fc
                .oneof(
                  fc.nat({ max: body.length - 1 }).map((at) => {
                    const copy = Buffer.from(body);
                    copy[at] = copy[at]! ^ 0x01;
                    return copy;
                  }),
                  fc.nat({ max: body.length - 1 }).map((at) => body.subarray(0, at)),
                  fc.string({ minLength: 1 }).map((tail) => Buffer.concat([body, Buffer.from(tail)])),
                  malformedPush(forge, JSON.parse(body.toString())).map((p) => Buffer.from(JSON.stringify(p))),
                )
                .filter((changed) => !changed.equals(body))
                .map((changed) => ({ fault: 'payload changed after signing', headers: signed, body: changed })),
            ]),
      )
      .map((r) => ({
        ...r,
        // GitLab sends the secret itself: "another secret" and a random token are its bad signatures.
        headers:
          forge === 'gitlab' && r.fault === 'random signature' ? { ...r.headers, [header]: 'x'.repeat(30) } : r.headers,
        fault: `${forge}: ${r.fault}`,
        method: 'POST',
        path: to(ctx.projectId, forge),
      }));
  });
  const pushes = delivery.filter(({ body }) => {
    const payload = JSON.parse(body.toString());
    return 'ref' in payload && payload.deleted !== true;
  });
  const signedMalformed = pushes.chain(({ forge, event, body }) =>
    fc
      .oneof(
        malformedPush(forge, JSON.parse(body.toString())).map((p) => Buffer.from(JSON.stringify(p))),
        fc.constantFrom('', '{', 'not json', '[]', '"push"', 'null', '{"ref":').map((t) => Buffer.from(t)),
      )
      .filter((changed) => !changed.equals(body))
      .map((changed) => ({
        fault: `${forge}: ${SIGNED_MALFORMED} ${changed.toString().slice(0, 40)}`,
        method: 'POST',
        path: to(ctx.projectId, forge),
        headers: forgeHeaders(forge, event === 'ping' ? 'push' : event, changed, HOOK_SECRET, randomUUID()),
        body: changed,
      })),
  );
  const badRoute = fc
    .tuple(
      delivery,
      fc.oneof(badPathValue, fc.constant(ctx.projectId)),
      fc.oneof(badPathValue, fc.constantFrom('GitHub', 'bitbucket', 'gitea ')),
    )
    .filter(([, id, forge]) => !(id === ctx.projectId && forges.includes(forge as Forge)))
    .map(([{ forge, event, body }, id, forgeName]) => ({
      fault: `unknown project or forge ${JSON.stringify([id.slice(0, 30), forgeName.slice(0, 30)])}`,
      method: 'POST',
      path: to(id, forgeName),
      headers: forgeHeaders(forge, event, body, HOOK_SECRET, randomUUID()),
      body,
    }));
  return fc.oneof({ weight: 3, arbitrary: badSignature }, { weight: 2, arbitrary: signedMalformed }, badRoute);
}

// ---------------------------------------------------------------------------------------------
// The battery

let database: TestDatabase;
let farm: TestFarm;
let redis: Redis;
let ctx: Context;

async function countRows(): Promise<Record<string, number>> {
  const client = new Client({ connectionString: database.url });
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ name: string }>(
      `SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'`,
    );
    const counts: Record<string, number> = {};
    for (const { name } of tables) {
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM "${name}"`);
      counts[name] = rows[0].n;
    }
    // A signed delivery is recorded even when malformed (a replay gets the same answer): such
    // rows are counted apart, and only they may appear.
    if ('Delivery' in counts) {
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM "Delivery" WHERE outcome = 'invalid'`);
      counts['Delivery (invalid, recorded)'] = rows[0].n;
      counts.Delivery -= rows[0].n;
    }
    return counts;
  } finally {
    await client.end();
  }
}

/** BullMQ jobs under the farm's prefix: hashes with a `data` field, whatever the queue. */
async function countJobs(): Promise<number> {
  let jobs = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${farm.queuePrefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) if ((await redis.type(key)) === 'hash' && (await redis.hexists(key, 'data'))) jobs += 1;
  } while (cursor !== '0');
  return jobs;
}

beforeAll(async () => {
  database = await createTestDatabase();
  // Production posture: file:// repositories refused. No agent: nothing is to be built.
  farm = await startFarm({ databaseUrl: database.url, agents: [], env: { FARM_ALLOW_FILE_REPOS: '0' } });
  redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true });
  await redis.connect();
  const build = await farm.request('POST', '/v1/builds', {
    repo: 'https://git.example.com/team/app.git',
    commit: 'b'.repeat(40),
    platforms: ['linux/amd64'],
    tags: ['127.0.0.1:5000/hostile/app:1'],
  });
  expect(build.status).toBe(202);
  const project = await farm.request('POST', '/v1/projects', {
    name: 'hostile-target',
    repo: 'https://git.example.com/team/app.git',
    image: '127.0.0.1:5000/hostile/hooked',
    platforms: ['linux/amd64'],
    tags: ['{branch}'],
    // No push of the fixtures matches: a fault that slipped through would still build nothing.
    branches: ['never-built'],
    tagsFilter: ['never-built'],
    webhookSecret: HOOK_SECRET,
  });
  expect(project.status).toBe(201);
  ctx = { farm, buildId: build.body.id, projectId: project.body.id, extraBodies: {} };
});

afterAll(async () => {
  redis?.disconnect();
  await farm?.stop();
  await database?.drop();
});

test('every route and webhook answers generated hostile requests with a documented 4xx, storing and queueing nothing', async () => {
  const doc = await (await fetch(`${farm.apiUrl}/docs/openapi.json`)).json();
  const operations = operationsOf(doc);
  const hooks = operations.filter((op) => op.path.includes('/hooks/'));
  const rest = operations.filter((op) => !op.path.includes('/hooks/'));
  // Public routes without parameters (health, metrics) take no input to make invalid.
  const inputless = rest.filter((op) => op.isPublic && op.params.length === 0 && !op.body);
  const targets = rest.filter((op) => !inputless.includes(op));
  expect(hooks.length).toBeGreaterThan(0);
  expect(targets.length).toBeGreaterThan(5);

  const rowsBefore = await countRows();
  const jobsBefore = await countJobs();
  const perRoute = new Map<string, number>();
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  let signedMalformed = 0;

  const send = async (request: HostileRequest): Promise<{ status: number; body: unknown; text: string }> => {
    const response = await fetch(`${farm.apiUrl}${request.path}`, {
      method: request.method,
      headers: request.headers,
      body: request.body,
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: response.status, body, text };
  };

  /**
   * Records the answer, and why when it is not a documented 4xx. Always true, so that every
   * generated request is sent (fast-check would stop at the first failure) and all are reported.
   */
  const judge = (route: string, request: HostileRequest, answer: { status: number; body: any; text: string }) => {
    perRoute.set(route, (perRoute.get(route) ?? 0) + 1);
    statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
    const error = answer.body?.error;
    const documented =
      answer.body &&
      Object.keys(answer.body).join() === 'error' &&
      typeof error?.code === 'string' &&
      ERROR_STATUS[error.code] === answer.status &&
      typeof error.message === 'string' &&
      error.message.length > 0 &&
      (error.field === undefined || typeof error.field === 'string') &&
      Object.keys(error).every((k) => ['code', 'message', 'field'].includes(k));
    const ok = answer.status >= 400 && answer.status < 500 && documented;
    if (!ok) {
      failures.push(
        `${route} [${request.fault}] ${request.method} ${request.path.slice(0, 120)} -> ${answer.status} ${answer.text.slice(0, 200)}`,
      );
    }
    return true;
  };

  const runsPerRoute = Math.ceil(TOTAL_REQUESTS / (targets.length + hooks.length));
  for (const op of targets) {
    const route = `${op.method} ${op.path}`;
    await fc.assert(
      fc.asyncProperty(restRequest(ctx, op), async (request) => judge(route, request, await send(request))),
      { numRuns: runsPerRoute, seed: SEED },
    );
  }
  for (const op of hooks) {
    const route = `${op.method} ${op.path}`;
    await fc.assert(
      fc.asyncProperty(hookRequest(ctx), async (request) => {
        const answer = await send(request);
        if (request.fault.includes(SIGNED_MALFORMED) && answer.status === 400) signedMalformed += 1;
        return judge(route, request, answer);
      }),
      { numRuns: runsPerRoute * 3, seed: SEED },
    );
  }
  // Routes that do not exist, and methods a route does not have.
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        // fetch resolves "." and ".." segments itself (to the dashboard at /): not sent as such.
        fc
          .tuple(
            fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
            nastyString.filter((s) => !['.', '..'].includes(s)),
          )
          .map(([method, s]) => ({
            method,
            path: `/v1/${encodeURIComponent(wellFormed(s))}`,
          })),
        fc.constantFrom(...rest).map((op) => ({ method: 'PUT', path: fillPath(op.path, {}) })),
      ),
      async ({ method, path }) => {
        const request = {
          fault: 'no such route',
          method,
          path,
          headers: { authorization: `Bearer ${farm.adminToken}` },
        };
        return judge('(no such route)', request, await send(request));
      },
    ),
    { numRuns: 60, seed: SEED },
  );
  // Input-less public routes: junk query strings and headers must not break them.
  for (const op of inputless) {
    for (const junk of ['?x=%00', '?__proto__[a]=1', `?${'a'.repeat(4000)}=1`, '?status=%E0%A4%A']) {
      const answer = await send({ fault: 'junk', method: op.method, path: `${op.path}${junk}`, headers: {} });
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      perRoute.set(
        `${op.method} ${op.path} (public, no input)`,
        (perRoute.get(`${op.method} ${op.path} (public, no input)`) ?? 0) + 1,
      );
      if (answer.status >= 500 && op.path !== '/readyz')
        failures.push(`${op.path}${junk.slice(0, 30)} -> ${answer.status}`);
    }
  }

  const total = [...perRoute.values()].reduce((a, b) => a + b, 0);
  const rowsAfter = await countRows();
  const jobsAfter = await countJobs();
  const health = await fetch(`${farm.apiUrl}/healthz`);
  const ready = await fetch(`${farm.apiUrl}/readyz`);

  console.log(
    [
      `hostile requests: ${total} over ${perRoute.size} routes (HOSTILE_SEED=${SEED})`,
      ...[...perRoute].map(([route, n]) => `  ${String(n).padStart(5)}  ${route}`),
      `status histogram: ${[...statuses]
        .sort(([a], [b]) => a - b)
        .map(([s, n]) => `${s}: ${n}`)
        .join(', ')}`,
      `5xx: ${[...statuses].filter(([s]) => s >= 500).reduce((a, [, n]) => a + n, 0)}`,
      `rows before: ${JSON.stringify(rowsBefore)}`,
      `rows after:  ${JSON.stringify(rowsAfter)} (signed malformed deliveries answered 400: ${signedMalformed})`,
      `BullMQ jobs before/after: ${jobsBefore}/${jobsAfter}`,
      `healthz ${health.status}, readyz ${ready.status}`,
      `failures: ${failures.length}`,
      ...failures.slice(0, 40),
    ].join('\n'),
  );

  expect(total).toBeGreaterThanOrEqual(1_000);
  expect(failures).toEqual([]);
  expect(health.status).toBe(200);
  expect(ready.status).toBe(200);
  expect(jobsAfter).toBe(jobsBefore);
  const { ['Delivery (invalid, recorded)']: invalidAfter, ...storedAfter } = rowsAfter;
  const { ['Delivery (invalid, recorded)']: invalidBefore, ...storedBefore } = rowsBefore;
  expect(storedAfter).toEqual(storedBefore);
  expect(invalidAfter! - invalidBefore!).toBe(signedMalformed);
  // No request made the api log an unexpected error.
  expect(farm.output()).not.toMatch(/"level":"error"/);
});
