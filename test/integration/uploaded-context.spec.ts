import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { UnrecoverableError } from 'bullmq';
import { encodeHeader, END_OF_ARCHIVE, packContext, padding } from '@farm/archive';
import { RegistryClient, sha256Digest } from '@farm/oci';
import type { PlatformBuildJob } from '@farm/queue';
import type { BuildContext } from '../../apps/agent/src/builders/builder';
import { LocalBuildahBuilder } from '../../apps/agent/src/builders/local-buildah.builder';
import { connectSshBuilder, type SshBuilder } from '../../apps/agent/src/builders/ssh';
import { pushBusyboxBase } from '../helpers/base-images';
import { readFileFromImage } from '../helpers/image-files';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { startSshd, type TestSshd } from '../helpers/sshd';

/**
 * Agents building an uploaded context (`farm build --upload`): the .tar.gz blob is fetched from
 * a real registry by digest, verified, unpacked safely, and built by real buildah, locally and
 * on a real SSH host.
 */

jest.setTimeout(120_000);

const CONTEXTS = { repository: 'farm/contexts' };
let registry: TestRegistry;
let sshd: TestSshd;
let client: RegistryClient;
let state: string;
let registryForHost: string;
let ssh: SshBuilder | undefined;

beforeAll(async () => {
  state = await mkdtemp(join(tmpdir(), 'farm-uploaded-context-'));
  [registry, sshd] = await Promise.all([startRegistry(), startSshd()]);
  await pushBusyboxBase(registry.host);
  registryForHost = await sshd.reach(Number(registry.host.split(':')[1]));
  client = new RegistryClient({ insecureRegistries: [registryForHost] });
});

afterAll(async () => {
  await ssh?.close().catch(() => undefined);
  await sshd?.stop();
  await registry?.stop();
  if (state) await rm(state, { recursive: true, force: true });
});

/** Packs `files` as a context and uploads the blob; returns its digest. */
async function uploadContext(files: Record<string, string>): Promise<string> {
  const dir = join(state, `ctx-${randomBytes(4).toString('hex')}`);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  const archive = `${dir}.tar.gz`;
  const packed = await packContext(dir, archive, { alwaysInclude: ['Dockerfile'] });
  await client.uploadBlob(
    { registry: registry.host, ...CONTEXTS },
    packed.digest,
    await readFile(archive),
    packed.size,
  );
  return packed.digest;
}

function jobFor(contextDigest: string): PlatformBuildJob {
  return {
    buildId: `b-${randomBytes(6).toString('hex')}`,
    platform: 'linux/amd64',
    repo: '',
    commit: '',
    contextDigest,
    dockerfile: 'Dockerfile',
    context: '.',
    buildArgs: {},
    labels: {},
    pushTo: { registry: registry.host, repository: `uploaded/${randomBytes(4).toString('hex')}` },
  };
}

function contextFor(): BuildContext & { lines: string[] } {
  const lines: string[] = [];
  return { signal: new AbortController().signal, lines, log: (line) => lines.push(line) };
}

function localBuilder(withRepository = true): LocalBuildahBuilder {
  return new LocalBuildahBuilder({
    platform: { os: 'linux', architecture: 'amd64' },
    emulated: false,
    stateDir: join(state, 'local'),
    allowFileRepos: true,
    registry: client,
    insecureRegistries: [],
    ...(withRepository && { contextRepository: { registry: registry.host, ...CONTEXTS } }),
  });
}

test('the local builder builds an uploaded context: the image holds its files, not the ignored ones', async () => {
  const digest = await uploadContext({
    Dockerfile: `FROM ${registry.host}/base/busybox:latest\nCOPY . /ctx/\n`,
    'app/work.txt': 'not committed anywhere\n',
    '.dockerignore': 'private.key\n',
    'private.key': 'secret\n',
  });
  const builder = localBuilder();
  const job = jobFor(digest);
  const context = contextFor();
  try {
    await builder.setup(job, context);
    const built = await builder.run(job, context);
    const read = (path: string) => readFileFromImage(registry.url, job.pushTo.repository, built.digest, path);
    expect(await read('/ctx/app/work.txt')).toBe('not committed anywhere\n');
    expect(await read('/ctx/private.key')).toBeUndefined();
    expect(context.lines).toContainEqual(expect.stringContaining(`fetching the uploaded context ${digest}`));
  } finally {
    await builder.destroy(job);
  }
});

test('the SSH builder sends the unpacked context to the host and builds it there', async () => {
  const digest = await uploadContext({
    Dockerfile: `FROM ${registryForHost}/base/busybox:latest\nCOPY note.txt /note.txt\nRUN cat /note.txt > /copied\n`,
    'note.txt': 'built over ssh\n',
  });
  ssh = await connectSshBuilder(
    { url: sshd.url, privateKey: sshd.clientKey, hostKeyFingerprint: sshd.hostKeyFingerprint },
    {
      name: 'uploaded-ctx',
      allowFileRepos: true,
      registry: client,
      insecureRegistries: [registryForHost],
      contextRepository: { registry: registry.host, ...CONTEXTS },
      remoteStateDir: join(state, 'remote'),
      localWorkDir: join(state, 'ssh-local'),
      log: () => undefined,
    },
  );
  const job = jobFor(digest);
  const context = contextFor();
  try {
    await ssh.setup(job, context);
    const built = await ssh.run(job, context);
    expect(await readFileFromImage(registry.url, job.pushTo.repository, built.digest, '/copied')).toBe(
      'built over ssh\n',
    );
  } finally {
    await ssh.destroy(job);
  }
});

test('a context that is not there, an agent without a context repository, an unsafe archive: unrecoverable', async () => {
  const builder = localBuilder();
  const missing = jobFor(sha256Digest(Buffer.from('never uploaded')));
  await expect(builder.setup(missing, contextFor())).rejects.toThrow(UnrecoverableError);
  await expect(builder.setup(missing, contextFor())).rejects.toThrow(/is not in/);
  await builder.destroy(missing);

  const unconfigured = localBuilder(false);
  const job = jobFor(sha256Digest(Buffer.from('whatever')));
  await expect(unconfigured.setup(job, contextFor())).rejects.toThrow(/no FARM_CONTEXT_REPOSITORY/);
  await unconfigured.destroy(job);

  // A blob with a member that climbs out of the work dir (a farm never packs one; a hostile client might).
  const header = encodeHeader({ path: 'x', type: 'file', mode: 0o644, size: 4 });
  header.fill(0, 0, 100);
  header.write('../../escaped', 0, 'utf8');
  header.fill(' ', 148, 156);
  header.write(
    `${header
      .reduce((sum, byte) => sum + byte, 0)
      .toString(8)
      .padStart(6, '0')}\0`,
    148,
    7,
    'latin1',
  );
  const hostile = gzipSync(Buffer.concat([header, Buffer.from('evil'), padding(4), END_OF_ARCHIVE]));
  const hostileDigest = sha256Digest(hostile);
  await client.uploadBlob({ registry: registry.host, ...CONTEXTS }, hostileDigest, hostile, hostile.length);
  const hostileJob = jobFor(hostileDigest);
  await expect(builder.setup(hostileJob, contextFor())).rejects.toThrow(/unusable: .*"\.\." is not allowed/);
  expect(await readdir(join(state, 'local'))).not.toContain('escaped');
  expect(await readdir(join(state, 'local', 'work'))).not.toContain('escaped');
  await builder.destroy(hostileJob);
});
