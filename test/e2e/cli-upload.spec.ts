import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repositoryRoot } from '../../scripts/lib/repository-root';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { readFileFromImage } from '../helpers/image-files';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * `farm build . --upload`: the real binary packs a git checkout WITH uncommitted changes (as
 * .dockerignore leaves it), uploads it to a real farm (api -> registry blob), and a real agent
 * fetches it by digest and builds it with buildah. Checked from the registry's side: the image's
 * layers and the uploaded blob itself.
 */

jest.setTimeout(240_000);

const run = promisify(execFile);
const BIN = join(repositoryRoot(), 'bin', 'farm.js');
const CONTEXTS = 'farm/contexts';

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let origin: TestGitRepo;
let workDir: string;
let clone: string;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function farmCli(args: string[], cwd = clone): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: join(workDir, 'home'),
        FARM_URL: farm.apiUrl,
        FARM_TOKEN: farm.adminToken,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function expectExit(result: CliResult, code: number): void {
  if (result.code !== code) {
    throw new Error(
      `expected exit ${code}, got ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}\n` +
        `--- farm\n${farm.output().slice(-5000)}`,
    );
  }
}

/** Whether the registry holds a blob in the context repository (asked of the registry itself). */
async function registryHasContext(digest: string): Promise<boolean> {
  const response = await fetch(`${registry.url}/v2/${CONTEXTS}/blobs/${digest}`, { method: 'HEAD' });
  return response.status === 200;
}

/** Names in an uploaded context blob, read from the registry with the real tar. */
async function contextBlobListing(digest: string): Promise<string[]> {
  const response = await fetch(`${registry.url}/v2/${CONTEXTS}/blobs/${digest}`);
  expect(response.status).toBe(200);
  const file = join(workDir, `${digest.slice(7, 19)}.tar.gz`);
  await writeFile(file, Buffer.from(await response.arrayBuffer()));
  const { stdout } = await run('tar', ['-tzf', file]);
  return stdout.split('\n').filter(Boolean);
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  const base = await pushBusyboxBase(registry.host);
  origin = await createGitRepo({
    // buildah applies .dockerignore to COPY as well; the blob listing below checks the upload itself.
    Dockerfile: `FROM ${base}\nCOPY . /ctx/\nRUN cat /ctx/hello.txt > /hello-at-build\n`,
    'hello.txt': 'hello as committed\n',
    '.dockerignore': 'secret.txt\n*.log\n!keep.log\n',
  });
  workDir = await mkdtemp(join(tmpdir(), 'farm-cli-upload-'));
  clone = join(workDir, 'clone');
  await run('git', ['clone', '--quiet', origin.url, clone]);
  // Uncommitted work: a changed tracked file, an untracked file, and files .dockerignore leaves out.
  await writeFile(join(clone, 'hello.txt'), 'hello, changed and not committed\n');
  await writeFile(join(clone, 'new.txt'), 'untracked, never committed\n');
  await writeFile(join(clone, 'secret.txt'), 'must not leave this machine\n');
  await writeFile(join(clone, 'debug.log'), 'ignored\n');
  await writeFile(join(clone, 'keep.log'), 'kept by an exception\n');

  farm = await startFarm({
    databaseUrl: database.url,
    agents: [{ name: 'native-amd64' }],
    env: { FARM_CONTEXT_REPOSITORY: `${registry.host}/${CONTEXTS}` },
  });
  await waitFor(
    async () => (await farm.request('GET', '/v1/agents')).body.agents.some((a: any) => a.status === 'online'),
    30_000,
    () => farm.output(),
  );
});

afterAll(async () => {
  await farm?.stop();
  await Promise.all([registry?.stop(), database?.drop(), origin?.remove()]);
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('farm build . --upload', () => {
  let contextDigest: string;

  test('builds the uncommitted tree; the image has the uncommitted files and not the ignored ones', async () => {
    const image = `${registry.host}/upload/app:1`;
    const result = await farmCli(['build', '.', '--upload', '--platform', 'linux/amd64', '-t', image]);
    expectExit(result, 0);
    expect(result.stderr).toMatch(/uploading context \d+ entries, .*sha256:[0-9a-f]{64}/);
    expect(result.stderr).not.toContain('uncommitted changes'); // the git warnings are for git builds
    expect(result.stdout).toMatch(/uploaded context sha256:/);
    expect(result.stdout).toMatch(/succeeded/);

    const builds = (await farm.request('GET', '/v1/builds')).body.builds;
    expect(builds).toHaveLength(1);
    const build = (await farm.request('GET', `/v1/builds/${builds[0].id}`)).body;
    expect(build).toMatchObject({ status: 'succeeded', repo: '', commit: '', context: '.', dockerfile: 'Dockerfile' });
    expect(build.contextDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    contextDigest = build.contextDigest;

    const manifest = build.platforms[0].digest;
    const read = (path: string) => readFileFromImage(registry.url, 'upload/app', manifest, path);
    expect(await read('/ctx/hello.txt')).toBe('hello, changed and not committed\n');
    expect(await read('/hello-at-build')).toBe('hello, changed and not committed\n');
    expect(await read('/ctx/new.txt')).toBe('untracked, never committed\n');
    expect(await read('/ctx/keep.log')).toBe('kept by an exception\n');
    expect(await read('/ctx/secret.txt')).toBeUndefined();
    expect(await read('/ctx/debug.log')).toBeUndefined();

    // What was uploaded: the ignored files never left this machine; the Dockerfile went along.
    expect(await registryHasContext(contextDigest)).toBe(true);
    const names = await contextBlobListing(contextDigest);
    expect(names).toEqual(expect.arrayContaining(['Dockerfile', '.dockerignore', 'hello.txt', 'new.txt', 'keep.log']));
    expect(names).not.toContain('secret.txt');
    expect(names).not.toContain('debug.log');
    // The checkout's .git goes along, as with Docker, unless .dockerignore names it.
    expect(names.some((name) => name.startsWith('.git/'))).toBe(true);
  });

  test('farm show names the uploaded context; the same tree again is not uploaded again', async () => {
    const id = (await farm.request('GET', '/v1/builds')).body.builds[0].id;
    const show = await farmCli(['show', id]);
    expectExit(show, 0);
    expect(show.stdout).toContain(`uploaded    ${contextDigest}`);

    const again = await farmCli([
      'build',
      '.',
      '--upload',
      '--platform',
      'linux/amd64',
      '-t',
      `${registry.host}/upload/app:2`,
    ]);
    expectExit(again, 0);
    expect(again.stderr).toContain(`${contextDigest}: already on the farm`);
    expect(again.stderr).not.toContain('uploading context');
    const latest = (await farm.request('GET', '/v1/builds')).body.builds[0];
    expect(latest.contextDigest).toBe(contextDigest);
  });

  test('a symlink out of the context is refused before anything is sent', async () => {
    const dir = join(workDir, 'escaping');
    await run('mkdir', ['-p', dir]);
    await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\n');
    await symlink('/etc/passwd', join(dir, 'passwd'));
    const before = (await farm.request('GET', '/v1/builds')).body.builds.length;
    const result = await farmCli(['build', '.', '--upload', '-t', `${registry.host}/upload/x:1`], dir);
    expectExit(result, 2);
    expect(result.stderr).toContain('symlink passwd -> /etc/passwd points outside the build context');
    expect((await farm.request('GET', '/v1/builds')).body.builds).toHaveLength(before);
  });
});

describe('POST /v1/contexts', () => {
  const upload = (digest: string, body: Buffer, type = 'application/gzip') =>
    fetch(`${farm.apiUrl}/v1/contexts?digest=${encodeURIComponent(digest)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${farm.adminToken}`, 'content-type': type },
      body,
    });

  test('a body that does not match the digest claimed answers 400 and stores nothing', async () => {
    const body = Buffer.from(`not what the digest says ${Date.now()}`);
    const claimed = sha256(Buffer.from('something else'));
    const response = await upload(claimed, body);
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: {
        code: 'invalid_request',
        message: expect.stringContaining(`hashes to ${sha256(body)}`),
        field: 'digest',
      },
    });
    expect(await registryHasContext(claimed)).toBe(false);
    expect(await registryHasContext(sha256(body))).toBe(false);
    const check = await farm.request('GET', `/v1/contexts/${claimed}`);
    expect(check.status).toBe(404);
    expect(check.body.error.code).toBe('not_found');
  });

  test('a matching body is stored once and described by digest and size', async () => {
    const body = Buffer.from(`a context ${Date.now()}`);
    const digest = sha256(body);
    const first = await upload(digest, body, 'application/octet-stream');
    expect(first.status).toBe(201);
    expect(await first.json()).toEqual({ digest, size: body.length });
    expect(await registryHasContext(digest)).toBe(true);
    expect((await farm.request('GET', `/v1/contexts/${digest}`)).body).toEqual({ digest, size: body.length });
    const head = await fetch(`${farm.apiUrl}/v1/contexts/${digest}`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${farm.adminToken}` },
    });
    expect(head.status).toBe(200);
    const second = await upload(digest, body);
    expect(second.status).toBe(201);
  });

  test('a stored context survives registry garbage collection: an artifact manifest tags it', async () => {
    const body = Buffer.from(`a context to keep ${Date.now()}`);
    const digest = sha256(body);
    expect((await upload(digest, body)).status).toBe(201);
    const tag = digest.replace(':', '-');
    const manifest = (await (
      await fetch(`${registry.url}/v2/${CONTEXTS}/manifests/${tag}`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
    ).json()) as any;
    expect(manifest.layers).toEqual([expect.objectContaining({ digest, size: body.length })]);
    expect(await registry.garbageCollectDryRun()).not.toContain(digest);

    // The control: a blob no manifest references is what a collection deletes.
    const loose = Buffer.from(`a loose blob ${Date.now()}`);
    const session = await fetch(`${registry.url}/v2/${CONTEXTS}/blobs/uploads/`, { method: 'POST' });
    const location = new URL(session.headers.get('location')!, registry.url);
    location.searchParams.set('digest', sha256(loose));
    expect((await fetch(location, { method: 'PUT', body: loose })).status).toBe(201);
    expect(await registry.garbageCollectDryRun()).toContain(sha256(loose));
  });

  test('bad requests: malformed digest, JSON body, no token; a body over the limit answers 413 unread', async () => {
    const body = Buffer.from('x');
    const malformed = await upload('sha256:abc', body);
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as any).error.field).toBe('digest');
    const json = await upload(sha256(body), body, 'application/json');
    expect(json.status).toBe(400);
    const anonymous = await fetch(`${farm.apiUrl}/v1/contexts?digest=${sha256(body)}`, { method: 'POST', body });
    expect(anonymous.status).toBe(401);

    // 600 MiB announced, nothing sent: the answer comes before any body.
    const tooLarge = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL(`${farm.apiUrl}/v1/contexts?digest=${sha256(body)}`);
      const req = httpRequest(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${farm.adminToken}`,
          'content-type': 'application/gzip',
          'content-length': String(600 * 1024 * 1024),
        },
      });
      req.on('response', (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, body: text });
        });
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(tooLarge.status).toBe(413);
    expect(JSON.parse(tooLarge.body).error.code).toBe('payload_too_large');
  });

  test('a build of a context never uploaded answers 422; one naming a repo too answers 400; nothing is stored', async () => {
    const before = (await farm.request('GET', '/v1/builds')).body.builds.length;
    const request = { platforms: ['linux/amd64'], tags: [`${registry.host}/upload/none:1`] };
    const unknown = await farm.request('POST', '/v1/builds', {
      ...request,
      contextDigest: sha256(Buffer.from('never')),
    });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error).toMatchObject({ code: 'unprocessable', field: 'contextDigest' });
    const both = await farm.request('POST', '/v1/builds', {
      ...request,
      repo: origin.url,
      contextDigest: sha256(Buffer.from('x')),
    });
    expect(both.status).toBe(400);
    expect(both.body.error.field).toBe('repo');
    const neither = await farm.request('POST', '/v1/builds', request);
    expect(neither.status).toBe(400);
    expect((await farm.request('GET', '/v1/builds')).body.builds).toHaveLength(before);
  });
});
