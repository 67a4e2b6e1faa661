import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopProcess } from '../../scripts/lib/processes';
import { repositoryRoot } from '../../scripts/lib/repository-root';
import { freePort } from './ports';

/**
 * The whole farm as real processes, started the way `npm run start:*` starts them (from the
 * compiled `dist/`, which `npm test` builds first), each with its own queue prefix and state
 * dir, and killed by PID in stop().
 */

// The checkout's root, also when this helper runs compiled from dist/ (npm run bench).
const ROOT = repositoryRoot();

export interface AgentSpec {
  platform?: string;
  emulated?: boolean;
  name?: string;
  labels?: string[];
  /** Extra environment, e.g. a REDIS_URL with an ACL user. */
  env?: Record<string, string>;
  /** Extra command-line arguments, e.g. the --ssh flags. */
  args?: string[];
}

export interface TestFarm {
  apiUrl: string;
  adminToken: string;
  queuePrefix: string;
  /** Output of every process, for diagnosing a failing test. */
  output(): string;
  /** Starts one more agent (same state dir and queue prefix); resolves once it serves. */
  startAgent(spec: AgentSpec): Promise<ChildProcess>;
  /** The process of the agent started with this name. */
  agent(name: string): ChildProcess;
  /** The coordinator processes, in start order (see StartFarmOptions.coordinators). */
  coordinators: ChildProcess[];
  /**
   * Polls `GET /v1/builds/{id}` until `until` holds (default: the build ended) and returns it;
   * fails with the build and the farm's recent output after 3 minutes.
   */
  waitForBuild(id: string, until?: (build: any) => boolean): Promise<any>;
  /** Calls the REST API with the admin token unless `token` is given (null: no header). */
  request(method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

export interface StartFarmOptions {
  databaseUrl: string;
  agents: AgentSpec[];
  env?: Record<string, string>;
  /** Default: the shared Redis on 127.0.0.1:6379; fault tests pass a redis-server of their own. */
  redisUrl?: string;
  /** Coordinator replicas to start (default 1). */
  coordinators?: number;
}

function entry(app: string): string {
  const file = join(ROOT, 'dist', 'apps', app, 'src', 'main.js');
  if (!existsSync(file)) throw new Error(`${file} is missing: run "npm run build" first (npm test does)`);
  return file;
}

export async function startFarm(options: StartFarmOptions): Promise<TestFarm> {
  const port = await freePort();
  const adminToken = randomBytes(16).toString('hex');
  const queuePrefix = `farmtest-${randomBytes(4).toString('hex')}`;
  const stateDir = await mkdtemp(join(tmpdir(), 'farm-state-'));
  const common: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    REDIS_URL: options.redisUrl ?? 'redis://127.0.0.1:6379',
    FARM_QUEUE_PREFIX: queuePrefix,
    FARM_ALLOW_FILE_REPOS: '1',
    LOG_LEVEL: 'info',
    ...options.env,
  };
  const children: ChildProcess[] = [];
  let output = '';
  const launch = (name: string, file: string, args: string[], env: Record<string, string>) => {
    const child = spawn(process.execPath, [file, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    // Whole lines get the process name once, however the output is chunked.
    const collector = () => {
      let partial = '';
      return (chunk: Buffer) => {
        const lines = (partial + chunk.toString()).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) output += `[${name}] ${line}\n`;
      };
    };
    child.stdout?.on('data', collector());
    child.stderr?.on('data', collector());
    children.push(child);
    return child;
  };

  const stop = async () => {
    await Promise.all(children.map((child) => stopProcess(child)));
    await removeStateDir(stateDir);
  };

  try {
    const database = { DATABASE_URL: options.databaseUrl };
    launch('api', entry('api'), [], { ...common, ...database, PORT: String(port), FARM_ADMIN_TOKEN: adminToken });
    const coordinators = Array.from({ length: options.coordinators ?? 1 }, (_, i) =>
      launch(i === 0 ? 'coordinator' : `coordinator ${i + 1}`, entry('coordinator'), [], { ...common, ...database }),
    );
    const agents = new Map<string, ChildProcess>();
    const launchAgent = (agent: AgentSpec) => {
      const name = agent.name ?? `test-agent-${agents.size}`;
      const args = [
        ...(agent.platform ? ['--platform', agent.platform] : []),
        ...(agent.emulated ? ['--emulated'] : []),
        ...(agent.labels?.length ? ['--labels', agent.labels.join(',')] : []),
        '--name',
        name,
        ...(agent.args ?? []),
      ];
      const child = launch(`agent ${name}`, entry('agent'), args, {
        ...common,
        FARM_STATE_DIR: stateDir,
        ...agent.env,
      });
      agents.set(name, child);
      return { name, child };
    };
    options.agents.forEach(launchAgent);
    const apiUrl = `http://127.0.0.1:${port}`;
    await waitFor(
      async () => (await fetch(`${apiUrl}/readyz`)).ok,
      20_000,
      () => output,
    );
    const request: TestFarm['request'] = async (method, path, body, token) => {
      const headers: Record<string, string> = {};
      if (token !== null) headers.authorization = `Bearer ${token ?? adminToken}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const response = await fetch(`${apiUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await response.text();
      let parsed: unknown = text;
      if ((response.headers.get('content-type') ?? '').includes('json')) parsed = JSON.parse(text);
      return { status: response.status, body: parsed };
    };
    const startAgent = async (spec: AgentSpec) => {
      const { name, child } = launchAgent(spec);
      // Counted, not just found: an agent restarted under the same name announces itself again.
      const announcements = () => output.split(`${name} serving`).length - 1;
      const before = announcements();
      await waitFor(
        async () => announcements() > before,
        20_000,
        () => output,
      );
      return child;
    };
    const agent = (name: string) => {
      const child = agents.get(name);
      if (!child) throw new Error(`no agent named ${name}`);
      return child;
    };
    const waitForBuild = async (id: string, until: (build: any) => boolean = (b) => b.finishedAt !== null) => {
      let build: any;
      await waitFor(
        async () => until((build = (await request('GET', `/v1/builds/${id}`)).body)),
        180_000,
        () => `build ${id}: ${JSON.stringify(build)}\n${output.slice(-6000)}`,
      );
      return build;
    };
    return {
      apiUrl,
      adminToken,
      queuePrefix,
      output: () => output,
      request,
      startAgent,
      agent,
      coordinators,
      waitForBuild,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** `GET /v1/agents`, keyed by agent name. */
export async function agentsByName(farm: Pick<TestFarm, 'request'>): Promise<Record<string, any>> {
  const { body } = await farm.request('GET', '/v1/agents');
  return Object.fromEntries(body.agents.map((agent: any) => [agent.name, agent]));
}

/** Retries `check` until it returns true; fails with `context()` after `timeoutMs`. */
export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs: number,
  context: () => string = () => '',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms\n${context()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Removes an agents' state dir. An agent killed mid-build leaves its buildah process and
 * overlay mounts behind (as on a real host); unmount them first so the directory can go.
 */
async function removeStateDir(stateDir: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((mountPoint): mountPoint is string => !!mountPoint && mountPoint.startsWith(`${stateDir}/`))
    .sort((a, b) => b.length - a.length);
  for (const mountPoint of mounts) {
    await new Promise((resolve) => execFile('umount', ['-l', mountPoint], resolve));
  }
  await rm(stateDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}
