// `npm start` (after scripts/prepare.sh): the whole farm on this host. Applies the migrations,
// starts a local registry on 127.0.0.1:5000 unless one answers there, seeds a sample base image
// and repository, then runs the api, the coordinator and one agent per platform this host may
// build (its native one, plus FARM_EMULATED_PLATFORMS under qemu-user emulation). Ctrl-C stops
// everything it started.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { applyMigrations } from '@farm/db';
import { machine } from 'node:os';
import { formatPlatform, parsePlatform, platformFromMachine } from '@farm/domain';
import { stopProcess } from './lib/processes';
import { seedSample } from './sample';

const ROOT = resolve(__dirname, '..', '..');
const CACHE = join(ROOT, '.cache');
const REGISTRY_HOST = '127.0.0.1:5000';

const env = {
  ...process.env,
  DATABASE_URL: process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/buildfarm',
  REDIS_URL: process.env.REDIS_URL || 'redis://127.0.0.1:6379',
  PORT: process.env.PORT || '8080',
  // The local farm builds repositories of this host too (the sample is one); off by default elsewhere.
  FARM_ALLOW_FILE_REPOS: process.env.FARM_ALLOW_FILE_REPOS ?? '1',
  FARM_STATE_DIR: process.env.FARM_STATE_DIR || join(CACHE, 'state'),
  // `farm build --upload` contexts go to the local registry.
  FARM_CONTEXT_REPOSITORY: process.env.FARM_CONTEXT_REPOSITORY || `${REGISTRY_HOST}/buildfarm/contexts`,
};

const children: ChildProcess[] = [];
const say = (line: string) => console.log(`[farm] ${line}`);

function launch(name: string, args: string[], childEnv: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = (chunk: Buffer) => chunk.toString().replace(/^(?=.)/gm, `[${name}] `);
  child.stdout?.on('data', (chunk: Buffer) => process.stdout.write(prefix(chunk)));
  child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(prefix(chunk)));
  child.on('exit', (code, signal) => {
    if (!stopping) {
      say(`${name} exited (${signal ?? code}); stopping the farm`);
      void stop(1);
    }
  });
  children.push(child);
  return child;
}

let stopping = false;
async function stop(code: number): Promise<void> {
  stopping = true;
  await Promise.all(children.map((child) => stopProcess(child, 10_000)));
  process.exit(code);
}

async function registryAnswers(host: string): Promise<boolean> {
  try {
    const response = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1_000) });
    return response.status === 200 || response.status === 401;
  } catch {
    return false;
  }
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A docker-registry (distribution 2.8) on 127.0.0.1:5000 with its storage in .cache/registry. */
async function ensureRegistry(): Promise<void> {
  if (await registryAnswers(REGISTRY_HOST)) {
    say(`using the registry already answering on ${REGISTRY_HOST}`);
    return;
  }
  const dir = join(CACHE, 'registry');
  await mkdir(join(dir, 'data'), { recursive: true });
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: warn }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
      `http: { addr: "${REGISTRY_HOST}" }`,
      '',
    ].join('\n'),
  );
  const registry = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  registry.stderr?.on('data', (chunk: Buffer) => process.stderr.write(`[registry] ${chunk.toString()}`));
  registry.on('exit', (code) => {
    if (!stopping) {
      say(`registry exited (${code}); stopping the farm`);
      void stop(1);
    }
  });
  children.push(registry);
  await waitUntil('the registry', () => registryAnswers(REGISTRY_HOST));
  say(`registry on http://${REGISTRY_HOST} (storage ${join(dir, 'data')})`);
}

/** The variable's value, or one generated once and kept in .cache/<file> (mode 0600). */
async function keptSecret(variable: string, file: string, generate: () => string): Promise<string> {
  const given = process.env[variable];
  if (given) return given;
  const path = join(CACHE, file);
  if (existsSync(path)) return (await readFile(path, 'utf8')).trim();
  const secret = generate();
  await mkdir(CACHE, { recursive: true });
  await writeFile(path, `${secret}\n`, { mode: 0o600 });
  return secret;
}

async function main(): Promise<void> {
  process.once('SIGINT', () => void stop(0));
  process.once('SIGTERM', () => void stop(0));

  const { applied } = await applyMigrations(env.DATABASE_URL);
  say(applied.length ? `applied migrations: ${applied.join(', ')}` : 'database schema is up to date');
  await ensureRegistry();
  const sample = await seedSample(REGISTRY_HOST, join(CACHE, 'sample-app'));

  const token = await keptSecret('FARM_ADMIN_TOKEN', 'admin-token', () => `farm_${randomBytes(24).toString('hex')}`);
  // Build secrets are sealed by the api and opened by the agents with this key.
  const secretsKey = await keptSecret('FARM_SECRETS_KEY', 'secrets-key', () => randomBytes(32).toString('hex'));
  const farmEnv = { ...env, FARM_SECRETS_KEY: secretsKey };
  const dist = (app: string) => join(ROOT, 'dist', 'apps', app, 'src', 'main.js');
  launch('api', [dist('api')], { ...farmEnv, FARM_ADMIN_TOKEN: token });
  launch('coordinator', [dist('coordinator')], farmEnv);
  // Agents hold no database credentials (DESIGN.md).
  const { DATABASE_URL: _database, ...agentEnv } = farmEnv;
  launch('agent', [dist('agent')], agentEnv);
  const emulated = (process.env.FARM_EMULATED_PLATFORMS ?? '').split(/[,\s]+/).filter(Boolean);
  for (const platform of emulated) {
    const name = formatPlatform(parsePlatform(platform));
    launch(`agent ${name}`, [dist('agent'), '--platform', name, '--emulated'], agentEnv);
  }

  const api = `http://127.0.0.1:${env.PORT}`;
  await waitUntil('the api', async () => (await fetch(`${api}/readyz`).catch(() => undefined))?.ok === true);
  const platforms = [
    formatPlatform(platformFromMachine(machine())),
    ...emulated.map((p) => formatPlatform(parsePlatform(p))),
  ];
  const example = JSON.stringify({
    repo: sample.repoUrl,
    ref: 'main',
    platforms,
    tags: [`${REGISTRY_HOST}/sample/app:latest`],
  });
  console.log(
    [
      '',
      `buildfarm is running. API: ${api}   admin token: ${token}`,
      `agents: ${platforms.join(', ')}${emulated.length ? ` (${emulated.join(', ')} under qemu-user emulation)` : ''}`,
      '',
      'Build the sample app (paste this):',
      `  curl -s -X POST ${api}/v1/builds -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' \\`,
      `    -d '${example}'`,
      'then follow it with:',
      `  curl -s ${api}/v1/builds/<id> -H 'Authorization: Bearer ${token}'`,
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  console.error(`[farm] ${(error as Error).message}`);
  void stop(1);
});
