import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repositoryRoot } from '../../scripts/lib/repository-root';
import { pushBusyboxBase } from '../helpers/base-images';
import { archDockerfile, failingOnArm64Dockerfile } from '../helpers/dockerfiles';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { skopeoRaw } from '../helpers/image-files';
import { freePort } from '../helpers/ports';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * The `farm` command as users run it: the compiled binary (`node bin/farm.js`, built by
 * `npm run build`) in a git clone, against a running farm with a native amd64 agent and an
 * emulated arm64 agent; the live view under a real pseudo-terminal (util-linux `script`).
 */

jest.setTimeout(240_000);

const run = promisify(execFile);
const BIN = join(repositoryRoot(), 'bin', 'farm.js');
const DIGEST = /sha256:[0-9a-f]{64}/;
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;
const SECRET = `token-${randomBytes(8).toString('hex')}`;

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let origin: TestGitRepo;
let workDir: string;
/** A clone of `origin`, so its `origin` remote is the file:// URL agents fetch from. */
let clone: string;
let home: string;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/farm.js ARGS` with a clean environment: only what `env` adds. */
function farmCli(
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; input?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd ?? clone,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
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
    child.stdin.end(options.input ?? '');
  });
}

/** The farm's URL and admin token in the environment, as CI would set them. */
const farmEnv = () => ({ FARM_URL: farm.apiUrl, FARM_TOKEN: farm.adminToken });
const describeRun = (result: CliResult) =>
  `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}\n--- farm\n${farm.output().slice(-4000)}`;

function expectExit(result: CliResult, code: number): void {
  if (result.code !== code) throw new Error(`expected exit ${code}, got ${describeRun(result)}`);
}

async function gitIn(dir: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', ['-c', 'user.name=CLI Test', '-c', 'user.email=cli@farm.invalid', ...args], {
    cwd: dir,
  });
  return stdout.trim();
}

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  const base = await pushBusyboxBase(registry.host);
  origin = await createGitRepo({
    Dockerfile: archDockerfile(base),
    'hello.txt': 'hello from the farm CLI\n',
    // A context of its own in a subdirectory.
    'failing/Dockerfile': failingOnArm64Dockerfile(base),
    // Succeeds only with the expected build secret mounted.
    'Dockerfile.secret': `FROM ${base}\nRUN --mount=type=secret,id=NPM_TOKEN test "$(cat /run/secrets/NPM_TOKEN)" = "${SECRET}"\n`,
  });
  workDir = await mkdtemp(join(tmpdir(), 'farm-cli-'));
  home = join(workDir, 'home');
  clone = join(workDir, 'clone');
  await run('git', ['clone', '--quiet', origin.url, clone]);
  farm = await startFarm({
    databaseUrl: database.url,
    agents: [{ name: 'native-amd64' }, { platform: 'linux/arm64', emulated: true, name: 'qemu-arm64' }],
    env: { FARM_SECRETS_KEY: randomBytes(32).toString('hex') },
  });
  // Both agents online, so no platform starts out unschedulable.
  await waitFor(
    async () =>
      (await farm.request('GET', '/v1/agents')).body.agents.filter((a: any) => a.status === 'online').length === 2,
    30_000,
    () => farm.output(),
  );
});

afterAll(async () => {
  await farm?.stop();
  await Promise.all([registry?.stop(), database?.drop(), origin?.remove()]);
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('farm login', () => {
  test('checks the token, saves it with mode 0600 in a 0700 directory, and later commands use it', async () => {
    const config = join(workDir, 'login-stdin', 'buildfarm', 'credentials.json');
    const env = { FARM_CONFIG: config };
    const login = await farmCli(['login', `${farm.apiUrl}/`], { env, input: `${farm.adminToken}\n` });
    expectExit(login, 0);
    expect(login.stdout).toContain(`logged in to ${farm.apiUrl}`);
    expect(JSON.parse(await readFile(config, 'utf8'))).toEqual({ url: farm.apiUrl, token: farm.adminToken });
    expect((await stat(config)).mode & 0o777).toBe(0o600);
    expect((await stat(join(workDir, 'login-stdin', 'buildfarm'))).mode & 0o777).toBe(0o700);

    // No FARM_URL / FARM_TOKEN: the saved credentials are used.
    const agents = await farmCli(['agents'], { env });
    expectExit(agents, 0);
    expect(agents.stdout).toContain('native-amd64');
  });

  test('--token saves to ~/.config/buildfarm/credentials.json by default', async () => {
    const ownHome = join(workDir, 'login-home');
    const login = await farmCli(['login', farm.apiUrl, '--token', farm.adminToken], { env: { HOME: ownHome } });
    expectExit(login, 0);
    const file = join(ownHome, '.config', 'buildfarm', 'credentials.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(ownHome, '.config', 'buildfarm'))).mode & 0o777).toBe(0o700);
  });

  test('a refused token exits 2 and saves nothing', async () => {
    const config = join(workDir, 'login-refused', 'credentials.json');
    const login = await farmCli(['login', farm.apiUrl], { env: { FARM_CONFIG: config }, input: 'not-the-token\n' });
    expectExit(login, 2);
    expect(login.stderr).toContain('refused this token');
    await expect(stat(config)).rejects.toThrow(/ENOENT/);
  });
});

test('farm build in a clone publishes both platforms and prints the digest and tags (plain output)', async () => {
  const tags = [`${registry.host}/cli/app:1.0`, `${registry.host}/cli/app:latest`];
  const result = await farmCli(['build', '-t', tags[0], '-t', tags[1], '--platform', 'linux/amd64,linux/arm64'], {
    env: farmEnv(),
  });
  expectExit(result, 0);
  expect(result.stdout).not.toMatch(ANSI);
  expect(result.stderr).toBe(''); // pushed and clean: no warnings
  const lines = result.stdout.split('\n');
  expect(lines[0]).toMatch(new RegExp(`^build [0-9a-f-]{36}  ${origin.url} @ ${origin.commit.slice(0, 12)}$`));
  expect(lines).toContainEqual(
    expect.stringMatching(/^linux\/amd64 +succeeded +[\d.]+m?s +on native-amd64 {2}sha256:/),
  );
  expect(lines).toContainEqual(
    expect.stringMatching(/^linux\/arm64 +succeeded +[\d.]+m?s +on qemu-arm64 \(emulated\) {2}sha256:/),
  );
  expect(lines).toContainEqual(expect.stringMatching(/^linux\/arm64 +running +.*on qemu-arm64 \(emulated\)$/));
  expect(lines).toContainEqual(expect.stringMatching(/^index +published /));
  const digest = /^digest {2}(sha256:[0-9a-f]{64})$/m.exec(result.stdout)?.[1];
  expect(digest).toMatch(DIGEST);
  expect(result.stdout).toContain(`tag     ${tags[0]}\ntag     ${tags[1]}\n`);

  // What a real client pulls under the tag is the index the CLI printed.
  const index = await skopeoRaw(tags[0]);
  expect(index.manifests.map((m: any) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
  const { stdout: published } = await run('skopeo', [
    'inspect',
    '--tls-verify=false',
    '--format',
    '{{.Digest}}',
    `docker://${tags[0]}`,
  ]);
  expect(published.trim()).toBe(digest);
});

test('a failing platform exits 1 and prints its log tail', async () => {
  const tag = `${registry.host}/cli/broken:1`;
  // PATH is the context; its Dockerfile is found there; both relative to the repository root.
  const result = await farmCli(['build', 'failing', '-t', tag, '--platform', 'linux/amd64,linux/arm64'], {
    env: farmEnv(),
  });
  expectExit(result, 1);
  expect(result.stdout).toMatch(/^linux\/amd64 +succeeded /m);
  expect(result.stdout).toMatch(/^linux\/arm64 +failed +.*on qemu-arm64 \(emulated\)/m);
  expect(result.stdout).toMatch(/^index +failed /m);
  expect(result.stderr).toMatch(/^--- linux\/arm64 failed on qemu-arm64 \(emulated\): /m);
  expect(result.stderr).toContain('about to fail on arm64');
  expect(result.stderr).toMatch(/^build [0-9a-f-]{36} failed in [\d.]+m?s: /m);
  expect(result.stdout).not.toMatch(/^digest/m);
  const id = /^build ([0-9a-f-]{36})/.exec(result.stdout)?.[1];
  const build = (await farm.request('GET', `/v1/builds/${id}`)).body;
  expect(build).toMatchObject({ status: 'failed', context: 'failing', dockerfile: 'failing/Dockerfile' });
});

test('the live view redraws one line per platform in place on a terminal', async () => {
  const tag = `${registry.host}/cli/tty:1`;
  const command = [process.execPath, BIN, 'build', '-t', tag, '--platform', 'linux/amd64,linux/arm64']
    .map(shellQuote)
    .join(' ');
  // util-linux script gives the command a pseudo-terminal; -e passes its exit code on.
  const result = await new Promise<CliResult>((resolve, reject) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: clone,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, TERM: 'xterm', ...farmEnv() },
      stdio: ['pipe', 'pipe', 'pipe'],
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
  expectExit(result, 0);
  const screen = result.stdout;
  expect(screen).toContain('\x1b[?25l'); // cursor hidden while drawing
  expect(screen).toContain('\x1b[3A'); // back up over two platform lines and the index line
  expect(screen).toContain('\r\x1b[2Klinux/amd64  ');
  expect(screen).toContain('\r\x1b[2Klinux/arm64  ');
  expect(screen).toContain('\x1b[?25h'); // and shown again
  // The last frame is the final state, then the summary follows as plain lines.
  const lastFrame = screen.slice(screen.lastIndexOf('\x1b[3A'));
  const text = lastFrame.replace(ANSI, '').replace(/\r/g, '');
  expect(text).toMatch(/^linux\/amd64 +succeeded .*on native-amd64/m);
  expect(text).toMatch(/^linux\/arm64 +succeeded .*on qemu-arm64 \(emulated\)/m);
  expect(text).toMatch(/^index +published /m);
  expect(text).toMatch(/^digest {2}sha256:[0-9a-f]{64}$/m);
  expect(text).toContain(`tag     ${tag}`);
});

test('farm build --json, then builds, show, logs and agents read the farm (human and --json)', async () => {
  const tag = `${registry.host}/cli/read:1`;
  const built = await farmCli(['build', '--json', '--no-cache', '-t', tag, '--platform', 'linux/arm64,linux/amd64'], {
    env: farmEnv(),
  });
  expectExit(built, 0);
  const build = JSON.parse(built.stdout);
  expect(build).toMatchObject({ status: 'succeeded', commit: origin.commit, tags: [tag] });
  expect(build.digest).toMatch(DIGEST);

  const list = await farmCli(['builds', '--json', '--limit', '100'], { env: farmEnv() });
  expectExit(list, 0);
  expect(JSON.parse(list.stdout).builds.map((b: any) => b.id)).toContain(build.id);
  const succeeded = await farmCli(['builds', '--status', 'succeeded'], { env: farmEnv() });
  expectExit(succeeded, 0);
  expect(succeeded.stdout).toMatch(/^ID +STATUS +PLATFORMS +COMMIT +TAGS +CREATED$/m);
  expect(succeeded.stdout).toMatch(new RegExp(`^${build.id} +succeeded +arm64:succeeded amd64:succeeded +`, 'm'));

  const shownJson = await farmCli(['show', build.id, '--json'], { env: farmEnv() });
  expectExit(shownJson, 0);
  expect(JSON.parse(shownJson.stdout)).toEqual((await farm.request('GET', `/v1/builds/${build.id}`)).body);
  const shown = await farmCli(['show', build.id], { env: farmEnv() });
  expectExit(shown, 0);
  expect(shown.stdout).toMatch(new RegExp(`^digest +${build.digest}$`, 'm'));
  expect(shown.stdout).toMatch(/^linux\/arm64 +succeeded +qemu-arm64 +yes +sha256:/m);
  expect(shown.stdout).toMatch(/^linux\/amd64 +succeeded +native-amd64 +no +sha256:/m);

  const log = await farmCli(['logs', build.id, '--platform', 'linux/arm64'], { env: farmEnv() });
  expectExit(log, 0);
  expect(log.stdout).toContain('RUN uname -m > /arch');
  const all = await farmCli(['logs', build.id], { env: farmEnv() });
  expect(all.stdout).toMatch(/^\[linux\/amd64\] /m);
  expect(all.stdout).toMatch(/^\[linux\/arm64\] /m);

  const agents = await farmCli(['agents'], { env: farmEnv() });
  expectExit(agents, 0);
  expect(agents.stdout).toMatch(
    /^linux\/amd64\n +NAME +STATUS +EMULATED +LABELS +JOBS +LAST SEEN\n +native-amd64 +online +no /m,
  );
  // JOBS may still list the build just finished until the agent's next heartbeat.
  expect(agents.stdout).toMatch(/^linux\/arm64\n.*\n +qemu-arm64 +online +yes +- +.* +\d+s ago$/m);
  const agentsJson = await farmCli(['agents', '--json'], { env: farmEnv() });
  expect(
    JSON.parse(agentsJson.stdout)
      .agents.map((a: any) => a.name)
      .sort(),
  ).toEqual(['native-amd64', 'qemu-arm64']);
});

test('farm retry reruns only the failed platform, follows it live and exits 1 when it fails again', async () => {
  const tag = `${registry.host}/cli/retry:1`;
  const first = await farmCli(['build', 'failing', '-t', tag, '--platform', 'linux/amd64,linux/arm64', '--no-wait'], {
    env: farmEnv(),
  });
  expectExit(first, 0);
  const id = first.stdout.trim();
  const failed = await farm.waitForBuild(id);
  expect(failed.status).toBe('failed');

  const cancel = await farmCli(['cancel', id], { env: farmEnv() });
  expectExit(cancel, 2);
  expect(cancel.stderr).toMatch(/^farm cancel: build .* is failed: only a queued or running build can be canceled$/m);

  // The same commit fails on arm64 again: the retry ends failed, amd64 kept as it was.
  const retried = await farmCli(['retry', id], { env: farmEnv() });
  expectExit(retried, 1);
  expect(retried.stdout).toContain(`retry 1 of build ${id}: rebuilding linux/arm64; reusing linux/amd64\n`);
  expect(retried.stdout).toMatch(/^linux\/amd64 +succeeded /m);
  expect(retried.stdout).toMatch(/^linux\/arm64 +failed +.*on qemu-arm64 \(emulated\)/m);
  expect(retried.stderr).toContain('about to fail on arm64');
  const after = (await farm.request('GET', `/v1/builds/${id}`)).body;
  expect(after).toMatchObject({ status: 'failed', retries: 1 });
  expect(after.platforms[0].digest).toBe(failed.platforms[0].digest);

  const json = await farmCli(['retry', id, '--json', '--no-wait'], { env: farmEnv() });
  expectExit(json, 0);
  expect(JSON.parse(json.stdout)).toMatchObject({ id, status: 'queued', retries: 2 });
  await farm.waitForBuild(id, (b) => b.finishedAt !== null);
});

test('farm cancel stops a queued build (human and --json); a build that cannot be canceled exits 2', async () => {
  // No agent serves linux/s390x: the build waits until canceled.
  const submit = () =>
    farmCli(['build', '--no-wait', '-t', `${registry.host}/cli/cancel:1`, '--platform', 'linux/s390x'], {
      env: farmEnv(),
    });
  const first = await submit();
  expectExit(first, 0);
  const id = first.stdout.trim();
  const canceled = await farmCli(['cancel', id], { env: farmEnv() });
  expectExit(canceled, 0);
  expect(canceled.stdout).toBe(`build ${id} canceled: linux/s390x stopped\n`);
  expect((await farm.request('GET', `/v1/builds/${id}`)).body.status).toBe('canceled');

  const second = (await submit()).stdout.trim();
  const json = await farmCli(['cancel', second, '--json'], { env: farmEnv() });
  expectExit(json, 0);
  expect(JSON.parse(json.stdout)).toMatchObject({
    id: second,
    status: 'canceled',
    platforms: [{ status: 'canceled' }],
  });

  const unknown = await farmCli(['cancel', '00000000-0000-4000-8000-000000000000'], { env: farmEnv() });
  expectExit(unknown, 2);
  expect(unknown.stderr).toContain('build 00000000-0000-4000-8000-000000000000 not found');
});

test('farm build --no-wait prints the id; farm logs -f follows the build to its end', async () => {
  const submitted = await farmCli(
    [
      'build',
      '--no-wait',
      '--no-cache',
      '-t',
      `${registry.host}/cli/follow:1`,
      '--platform',
      'linux/amd64,linux/arm64',
    ],
    {
      env: farmEnv(),
    },
  );
  expectExit(submitted, 0);
  const id = submitted.stdout.trim();
  expect(id).toMatch(/^[0-9a-f-]{36}$/);

  const followed = await farmCli(['logs', '-f', id], { env: farmEnv() });
  expectExit(followed, 0);
  // Live (Server-Sent Events) until the end, or the plain text so far where the farm has no SSE.
  if (/^build succeeded/m.test(followed.stderr)) {
    expect(followed.stdout).toMatch(/^\[linux\/arm64\] .*RUN uname -m > \/arch/m);
    expect(followed.stdout).toMatch(/^\[linux\/amd64\] .*RUN uname -m > \/arch/m);
  }
  await waitFor(async () => (await farm.request('GET', `/v1/builds/${id}`)).body.status === 'succeeded', 120_000);
});

test('warnings for an unpushed commit and a dirty worktree; an unreachable farm exits 2', async () => {
  const local = join(workDir, 'unpushed');
  await run('git', ['clone', '--quiet', origin.url, local]);
  await writeFile(join(local, 'new.txt'), 'not pushed\n');
  await gitIn(local, 'add', 'new.txt');
  await gitIn(local, 'commit', '--quiet', '-m', 'local only');
  await writeFile(join(local, 'hello.txt'), 'changed, not committed\n');
  const head = await gitIn(local, 'rev-parse', 'HEAD');

  const url = `http://127.0.0.1:${await freePort()}`;
  const result = await farmCli(['build', '-t', `${registry.host}/cli/x:1`], {
    cwd: local,
    env: { FARM_URL: url, FARM_TOKEN: 'whatever' },
  });
  expectExit(result, 2);
  expect(result.stderr).toContain(`warning: commit ${head.slice(0, 12)} is not on any remote branch`);
  expect(result.stderr).toContain('warning: the worktree has uncommitted changes');
  expect(result.stderr).toContain(`farm build: cannot reach the farm at ${url}: `);

  const builds = await farmCli(['builds'], { env: { FARM_URL: url, FARM_TOKEN: 'whatever' } });
  expectExit(builds, 2);
  expect(builds.stderr).toMatch(/cannot reach the farm .*ECONNREFUSED/);
});

test('farm build --secret mounts the secret from a file or the environment; the wrong one fails the RUN', async () => {
  const file = join(workDir, 'npm-token');
  await writeFile(file, SECRET, { mode: 0o600 });
  const build = (secret: string, env: Record<string, string> = {}) =>
    farmCli(
      ['build', '-f', 'Dockerfile.secret', '--no-cache', '--secret', secret, '-t', `${registry.host}/cli/secret:1`],
      { env: { ...farmEnv(), ...env } },
    );
  const fromFile = await build(`id=NPM_TOKEN,src=${file}`);
  expectExit(fromFile, 0);
  expect(fromFile.stdout + fromFile.stderr).not.toContain(SECRET);
  expectExit(await build('id=NPM_TOKEN,env=MY_TOKEN', { MY_TOKEN: SECRET }), 0);
  expectExit(await build('id=NPM_TOKEN', { NPM_TOKEN: SECRET }), 0);
  expectExit(await build('id=NPM_TOKEN,env=MY_TOKEN', { MY_TOKEN: 'not-the-token' }), 1);
});

describe('usage errors exit 2 with a message', () => {
  const cases: [string, string[], RegExp][] = [
    ['no command', [], /^usage: farm <command>/m],
    ['unknown command', ['frobnicate'], /unknown command "frobnicate"/],
    ['unknown flag', ['build', '--bogus', '-t', 'x/y:1'], /Unknown option '--bogus'/],
    ['no tag', ['build', '--platform', 'linux/amd64'], /give at least one -t TAG/],
    ['bad platform', ['build', '-t', 'x/y:1', '--platform', 'linux/x86'], /--platform: /],
    ['bad build arg', ['build', '-t', 'x/y:1', '--build-arg', 'NOVALUE'], /"NOVALUE" is not NAME=VALUE/],
    ['two paths', ['build', '.', 'other', '-t', 'x/y:1'], /unexpected argument "other"/],
    ['bad limit', ['builds', '--limit', '0'], /--limit: a number from 1 to 100/],
    ['bad status', ['builds', '--status', 'done'], /--status: one of queued, running/],
    ['show without id', ['show'], /give a build id/],
    ['cancel without id', ['cancel'], /give a build id/],
    ['retry with two ids', ['retry', 'a', 'b'], /unexpected argument "b"/],
    ['token create', ['token', 'create', '--scope', 'builds'], /farm token: unknown scope "builds"/],
    ['secret without id', ['build', '-t', 'x/y:1', '--secret', 'src=/etc/hostname'], /--secret: .* has no id=NAME/],
    [
      'secret file missing',
      ['build', '-t', 'x/y:1', '--secret', 'id=A,src=/nonexistent'],
      /cannot read \/nonexistent: ENOENT/,
    ],
    [
      'secret env unset',
      ['build', '-t', 'x/y:1', '--secret', 'id=FARM_UNSET_VAR'],
      /variable FARM_UNSET_VAR is not set/,
    ],
    [
      'secret twice',
      ['build', '-t', 'x/y:1', '--secret', 'id=A,env=PATH', '--secret', 'id=A,env=PATH'],
      /id "A" given twice/,
    ],
  ];
  test.each(cases)('%s', async (_name, args, message) => {
    const result = await farmCli(args, { env: farmEnv() });
    expectExit(result, 2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
  });

  test('the farm refusing a request (bad tag, unknown build, no login) exits 2 with its message', async () => {
    const badTag = await farmCli(['build', '-t', 'Not A Tag'], { env: farmEnv() });
    expectExit(badTag, 2);
    expect(badTag.stderr).toMatch(/^farm build: tags\[0\]: /m);
    const unknown = await farmCli(['show', '00000000-0000-4000-8000-000000000000'], { env: farmEnv() });
    expectExit(unknown, 2);
    expect(unknown.stderr).toContain('build 00000000-0000-4000-8000-000000000000 not found');
    const anonymous = await farmCli(['builds'], { env: { FARM_CONFIG: join(workDir, 'nobody.json') } });
    expectExit(anonymous, 2);
    expect(anonymous.stderr).toContain('not logged in');
  });

  test('--help prints the usage and exits 0', async () => {
    const result = await farmCli(['build', '--help']);
    expectExit(result, 0);
    expect(result.stdout).toMatch(/^usage: farm <command>/);
  });
});

/** Single-quotes one argument for the shell command `script -c` runs. */
function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
