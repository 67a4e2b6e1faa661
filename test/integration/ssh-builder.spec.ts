import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { UnrecoverableError } from 'bullmq';
import { RegistryClient } from '@farm/oci';
import type { PlatformBuildJob } from '@farm/queue';
import type { BuildContext } from '../../apps/agent/src/builders/builder';
import { LocalBuildahBuilder } from '../../apps/agent/src/builders/local-buildah.builder';
import {
  connectSshBuilder,
  HostKeyError,
  SshConnectionError,
  type SshBuilder,
  type SshBuilderOptions,
} from '../../apps/agent/src/builders/ssh';
import { pushBusyboxBase } from '../helpers/base-images';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { startSshd, type TestSshd } from '../helpers/sshd';

/**
 * The SSH builder against a real OpenSSH server (in a network namespace of its own when this
 * machine allows it), real buildah on the SSH host (this machine), real git and a real registry.
 */

jest.setTimeout(120_000);
const run = promisify(execFile);

let sshd: TestSshd;
let registry: TestRegistry;
let client: RegistryClient;
let state: string;
/** The registry as the SSH host reaches it. */
let registryForHost: string;
let base: string;
const repos: TestGitRepo[] = [];
const builders: SshBuilder[] = [];
const measured: string[] = [];

beforeAll(async () => {
  state = await mkdtemp(join(tmpdir(), 'farm-ssh-builder-'));
  [sshd, registry] = await Promise.all([startSshd(), startRegistry()]);
  await pushBusyboxBase(registry.host);
  registryForHost = await sshd.reach(Number(registry.host.split(':')[1]));
  base = `${registryForHost}/base/busybox:latest`;
  client = new RegistryClient({ insecureRegistries: [registryForHost] });
  measured.push(
    `sshd isolation: ${sshd.isolation}${sshd.isolationProblem ? ` (${sshd.isolationProblem})` : ''}, at ${sshd.url}`,
  );
});

afterAll(async () => {
  for (const builder of builders) await builder.close().catch(() => undefined);
  await sshd?.stop();
  await registry?.stop();
  for (const repo of repos) await repo.remove();
  if (state) await rm(state, { recursive: true, force: true });
  console.log(measured.join('\n'));
});

function options(name: string, extra: Partial<SshBuilderOptions> = {}): SshBuilderOptions {
  return {
    name,
    allowFileRepos: true,
    registry: client,
    insecureRegistries: [registryForHost],
    remoteStateDir: join(state, 'remote'),
    localWorkDir: join(state, 'local'),
    keepaliveIntervalMs: 500,
    keepaliveCountMax: 3,
    connectTimeoutMs: 5000,
    log: () => undefined,
    ...extra,
  };
}

async function connect(name: string, extra: Partial<SshBuilderOptions> = {}): Promise<SshBuilder> {
  const builder = await connectSshBuilder(
    { url: sshd.url, privateKey: sshd.clientKey, hostKeyFingerprint: sshd.hostKeyFingerprint },
    options(name, extra),
  );
  builders.push(builder);
  return builder;
}

async function repoWith(dockerfile: string, files: Record<string, string> = {}): Promise<TestGitRepo> {
  const repo = await createGitRepo({ Dockerfile: dockerfile, ...files });
  repos.push(repo);
  return repo;
}

function jobFor(repo: TestGitRepo, platform = 'linux/amd64', commit = repo.commit): PlatformBuildJob {
  return {
    buildId: `b-${randomBytes(6).toString('hex')}`,
    platform,
    repo: repo.url,
    commit,
    dockerfile: 'Dockerfile',
    context: '.',
    buildArgs: {},
    labels: {},
    pushTo: { registry: registry.host, repository: `ssh/${randomBytes(4).toString('hex')}` },
  };
}

/** A context whose log lines are kept with the time they arrived. */
function contextFor(signal = new AbortController().signal): BuildContext & { lines: { at: number; line: string }[] } {
  const lines: { at: number; line: string }[] = [];
  return { signal, lines, log: (line) => lines.push({ at: Date.now(), line }) };
}

function agentDir(name: string): string {
  return join(state, 'remote', 'agents', name);
}

async function workDirs(name: string): Promise<string[]> {
  return readdir(join(agentDir(name), 'work')).catch(() => []);
}

/** Live (not zombie) processes whose command line contains `marker`. */
async function liveProcesses(marker: string): Promise<number[]> {
  const { stdout } = await run('pgrep', ['-f', marker]).catch(() => ({ stdout: '' }));
  const pids = stdout.split('\n').filter(Boolean).map(Number);
  const live: number[] = [];
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (stat && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z') live.push(pid);
  }
  return live.filter((pid) => pid !== process.pid);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Reads one file of an image's top layer, as a client pulling it would see it. */
async function fileInTopLayer(repository: string, digest: string, path: string): Promise<string> {
  const ref = { registry: registry.host, repository };
  const manifest = JSON.parse((await client.getManifest(ref, digest)).body.toString()) as {
    layers: { digest: string }[];
  };
  const layer = await client.getBlob(ref, manifest.layers[manifest.layers.length - 1]!.digest);
  return new Promise((resolve, reject) => {
    const tar = spawn('tar', ['-xzOf', '-', path], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    tar.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    tar.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`no ${path} in the layer`))));
    tar.stdin.end(layer);
  });
}

describe('connecting', () => {
  test('detects the host platform over SSH', async () => {
    const started = Date.now();
    const builder = await connect('connect-test');
    measured.push(`connect (handshake, probe, cleanup, platform probe): ${Date.now() - started} ms`);
    expect(builder.platform).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(builder.emulated).toBe(false);
    await builder.close();
  });

  test('a known_hosts line pins the host too', async () => {
    const builder = await connectSshBuilder(
      { url: sshd.url, privateKey: sshd.clientKey, knownHostsLine: sshd.knownHostsLine },
      options('connect-known-hosts'),
    );
    builders.push(builder);
    expect(builder.platform.architecture).toBe('amd64');
    await builder.close();
  });

  test('a host key that is not the pinned one is refused, saying which key the host presented', async () => {
    const wrong = `SHA256:${'A'.repeat(43)}`;
    const attempt = connectSshBuilder(
      { url: sshd.url, privateKey: sshd.clientKey, hostKeyFingerprint: wrong },
      options('connect-wrong-key'),
    );
    await expect(attempt).rejects.toThrow(HostKeyError);
    await expect(attempt).rejects.toThrow(
      `host key verification failed for ${sshd.host}:${sshd.port}: the server presented ssh-ed25519 key ${sshd.hostKeyFingerprint}`,
    );
  });

  test('a known_hosts line for another key or another host is refused', async () => {
    const [, type] = sshd.knownHostsLine.split(' ');
    const otherKey = `${sshd.knownHostsLine.split(' ')[0]} ${type} AAAAC3NzaC1lZDI1NTE5AAAAID75lcSYgTnl0wQpMyctg/5XAf6TrDDcWrz33OR+5XFe`;
    await expect(
      connectSshBuilder({ url: sshd.url, privateKey: sshd.clientKey, knownHostsLine: otherKey }, options('kh-1')),
    ).rejects.toThrow(/not the pinned key/);
    const otherHost = sshd.knownHostsLine.replace(/^\S+/, 'elsewhere.example');
    await expect(
      connectSshBuilder({ url: sshd.url, privateKey: sshd.clientKey, knownHostsLine: otherHost }, options('kh-2')),
    ).rejects.toThrow(/is for elsewhere\.example/);
  });

  test('without a pin nothing is even attempted', async () => {
    await expect(
      connectSshBuilder({ url: sshd.url, privateKey: sshd.clientKey }, options('connect-no-pin')),
    ).rejects.toThrow(/refusing to connect .* without a pinned host key/);
  });

  test('a foreign platform needs emulation allowed explicitly', async () => {
    await expect(connect('connect-arm64', { platform: 'linux/arm64' })).rejects.toThrow(
      /runs linux\/amd64, not linux\/arm64; .*needs qemu-user emulation/,
    );
  });
});

describe('building', () => {
  test('setup, run and destroy build the exact commit on the host and push it by digest, without a tag', async () => {
    const repo = await repoWith(`FROM ${base}\nRUN uname -m > /arch && sleep 1\nCOPY hello.txt /hello.txt\n`, {
      'hello.txt': 'hello over ssh\n',
    });
    // The branch moves on: the job must still build the commit it names.
    await repo.commitFiles({ 'hello.txt': 'a later commit\n' });
    const builder = await connect('build-amd64');
    const job = jobFor(repo);
    const context = contextFor();

    const started = Date.now();
    await builder.setup(job, context);
    const setUp = Date.now();
    const image = await builder.run(job, context);
    const done = Date.now();
    await builder.destroy(job);
    measured.push(`amd64 build over SSH: setup ${setUp - started} ms, run ${done - setUp} ms`);

    expect(image.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(image.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const ref = { registry: registry.host, repository: job.pushTo.repository };
    expect(await client.headManifest(ref, image.digest)).toEqual({ ...image });
    // By digest only: the repository has no tag at all.
    const tags = await fetch(`${registry.url}/v2/${job.pushTo.repository}/tags/list`);
    const body = tags.status === 200 ? ((await tags.json()) as { tags: string[] | null }) : { tags: null };
    expect([200, 404]).toContain(tags.status);
    expect(body.tags ?? []).toEqual([]);

    expect(await fileInTopLayer(job.pushTo.repository, image.digest, 'hello.txt')).toBe('hello over ssh\n');
    const manifest = JSON.parse((await client.getManifest(ref, image.digest)).body.toString()) as {
      config: { digest: string };
    };
    const config = JSON.parse((await client.getBlob(ref, manifest.config.digest)).toString()) as {
      architecture: string;
      config: { Labels: Record<string, string> };
    };
    expect(config.architecture).toBe('amd64');
    expect(config.config.Labels['org.opencontainers.image.revision']).toBe(repo.commit);

    // Output came back while the build ran, not at its end: the RUN step's header arrived
    // before its one-second sleep was over.
    const step = context.lines.find(({ line }) => line.includes('RUN uname -m > /arch && sleep 1'));
    expect(step).toBeDefined();
    expect(done - step!.at).toBeGreaterThan(800);

    expect(await workDirs('build-amd64')).toEqual([]);
    expect(await readdir(join(state, 'local', 'build-amd64'))).toEqual([]);
    await builder.destroy(job); // idempotent
  });

  test('build times over SSH and locally, cold and warm (measured, for the report)', async () => {
    const repo = await repoWith(`FROM ${base}\nRUN uname -m > /arch\nCOPY hello.txt /hello.txt\n`, {
      'hello.txt': 'one\n',
    });
    const second = await repo.commitFiles({ 'hello.txt': 'two\n' });
    const ssh = await connect('timing');
    const local = new LocalBuildahBuilder({
      platform: { os: 'linux', architecture: 'amd64' },
      emulated: false,
      stateDir: join(state, 'local-builder'),
      allowFileRepos: true,
      registry: client,
      insecureRegistries: [registryForHost],
    });
    for (const [label, builder] of [
      ['over SSH', ssh],
      ['locally ', local],
    ] as const) {
      const times: number[] = [];
      for (const commit of [repo.commit, second]) {
        const job = jobFor(repo, 'linux/amd64', commit);
        const context = contextFor();
        const started = Date.now();
        await builder.setup(job, context);
        await builder.run(job, context);
        times.push(Date.now() - started);
        await builder.destroy(job);
      }
      measured.push(`amd64 build ${label} (setup + run): cold ${times[0]} ms, warm ${times[1]} ms`);
    }
  });

  test('an emulated arm64 build over SSH says so and runs arm64 code', async () => {
    const repo = await repoWith(`FROM ${base}\nRUN uname -m > /arch\n`);
    const builder = await connect('build-arm64', { platform: 'linux/arm64', emulated: true });
    expect(builder.platform).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(builder.emulated).toBe(true);
    const job = jobFor(repo, 'linux/arm64');
    const context = contextFor();
    await builder.setup(job, context);
    const image = await builder.run(job, context);
    await builder.destroy(job);
    expect(context.lines.some(({ line }) => line.includes('emulated with qemu-user'))).toBe(true);
    expect(await fileInTopLayer(job.pushTo.repository, image.digest, 'arch')).toBe('aarch64\n');
  });

  test('a failing build step and a missing commit are not retried', async () => {
    const repo = await repoWith(`FROM ${base}\nRUN exit 3\n`);
    const builder = await connect('build-failing');
    const job = jobFor(repo);
    await builder.setup(job, contextFor());
    await expect(builder.run(job, contextFor())).rejects.toThrow(UnrecoverableError);
    await builder.destroy(job);

    const missing = jobFor(repo, 'linux/amd64', 'f'.repeat(40));
    await expect(builder.setup(missing, contextFor())).rejects.toThrow(UnrecoverableError);
    await builder.destroy(missing);
    expect(await workDirs('build-failing')).toEqual([]);
    // A failed build leaves no working container in the host's storage.
    const containers = await readFile(
      join(agentDir('build-failing'), 'storage/overlay-containers/containers.json'),
      'utf8',
    );
    expect(JSON.parse(containers)).toEqual([]);
  });
});

describe('cancel and lost connections', () => {
  /** Starts a build whose RUN step sleeps, and waits until that step runs on the host. */
  async function startSleepingBuild(builder: SshBuilder, name: string, signal?: AbortSignal) {
    const marker = `farm-marker-${randomBytes(6).toString('hex')}`;
    const repo = await repoWith(`FROM ${base}\nRUN sleep 30; echo ${marker}\n`);
    const job = jobFor(repo);
    const context = contextFor(signal);
    await builder.setup(job, context);
    const running = builder.run(job, context);
    running.catch(() => undefined);
    const pids = await until('the RUN step on the host', async () => {
      const found = await liveProcesses(marker);
      return found.length > 0 ? found : undefined;
    });
    // The RUN step's shell and its `sleep` child.
    const children = await run('pgrep', ['-P', pids.join(',')]).then(
      ({ stdout }) => stdout.split('\n').filter(Boolean).map(Number),
      () => [] as number[],
    );
    expect(await workDirs(name)).toHaveLength(1);
    return { job, marker, running, pids: [...pids, ...children] };
  }

  async function alive(pids: number[]): Promise<number[]> {
    const live: number[] = [];
    for (const pid of pids) {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      if (stat && stat[stat.lastIndexOf(')') + 2] !== 'Z') live.push(pid);
    }
    return live;
  }

  test('cancel kills the remote process tree at once and destroy removes the work dir', async () => {
    const builder = await connect('cancel');
    const abort = new AbortController();
    const { job, marker, running, pids } = await startSleepingBuild(builder, 'cancel', abort.signal);
    expect(await alive(pids)).not.toEqual([]);

    const started = Date.now();
    abort.abort();
    await expect(running).rejects.toThrow(/canceled/);
    const took = Date.now() - started;
    measured.push(`cancel -> run() rejected: ${took} ms`);
    expect(took).toBeLessThan(5000);
    // SIGKILL was delivered before run() rejected; give the kernel a moment to finish the exits.
    await until(
      'the remote processes to exit',
      async () => ((await alive(pids)).length === 0 ? true : undefined),
      2000,
    );
    expect(await liveProcesses(marker)).toEqual([]);

    await builder.destroy(job);
    expect(await workDirs('cancel')).toEqual([]);
    const containers = await readFile(join(agentDir('cancel'), 'storage/overlay-containers/containers.json'), 'utf8');
    expect(JSON.parse(containers)).toEqual([]);
  });

  test('a cut connection fails the attempt (retryable) within seconds; the next connection cleans up', async () => {
    const builder = await connect('cut');
    const { marker, running, pids } = await startSleepingBuild(builder, 'cut');

    const started = Date.now();
    await sshd.dropConnections();
    const error = (await running.then(
      () => undefined,
      (e: unknown) => e,
    )) as Error;
    const took = Date.now() - started;
    measured.push(`connection cut (sshd killed) -> run() rejected: ${took} ms`);
    expect(error).toBeInstanceOf(SshConnectionError);
    expect(error).not.toBeInstanceOf(UnrecoverableError);
    expect(error.message).toMatch(/connection to .* lost during buildah bud/);
    expect(took).toBeLessThan(5000);

    // The host kept running the orphaned build: the agent is gone before it could clean up.
    await builder.close();
    expect(await alive(pids)).not.toEqual([]);
    expect(await workDirs('cut')).toHaveLength(1);

    const messages: string[] = [];
    const again = await connect('cut', { log: (line) => messages.push(line) });
    expect(await workDirs('cut')).toEqual([]);
    expect(messages.some((line) => line.startsWith('removed a stale work dir'))).toBe(true);
    await until('the stale processes to exit', async () => ((await alive(pids)).length === 0 ? true : undefined), 2000);
    expect(await liveProcesses(marker)).toEqual([]);
    await again.close();
  });

  test('a host that goes silent is noticed by keepalives; the builder reconnects for the next job', async () => {
    if (sshd.isolation !== 'netns') {
      console.warn(`skipped: no network namespace for sshd (${sshd.isolationProblem})`);
      return;
    }
    const builder = await connect('silent');
    const { job, running, pids } = await startSleepingBuild(builder, 'silent');

    const started = Date.now();
    await sshd.setLinkUp(false);
    const error = (await running.then(
      () => undefined,
      (e: unknown) => e,
    )) as Error;
    const took = Date.now() - started;
    measured.push(`link down (no reset) -> run() rejected: ${took} ms (keepalive 500 ms x 3)`);
    await sshd.setLinkUp(true);
    expect(error).toBeInstanceOf(SshConnectionError);
    expect(took).toBeLessThan(5000);

    // As the agent does: destroy after the failed attempt. It starts a reconnect, which
    // kills and removes what the lost connection left.
    await builder.destroy(job);
    const repo = await repoWith(`FROM ${base}\nRUN true\n`);
    const next = jobFor(repo);
    await builder.setup(next, contextFor());
    expect(await alive(pids)).toEqual([]);
    expect(await workDirs('silent')).toHaveLength(1);
    const image = await builder.run(next, contextFor());
    expect(image.digest).toMatch(/^sha256:/);
    await builder.destroy(next);
    expect(await workDirs('silent')).toEqual([]);
  });
});
