import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repositoryRoot } from '../../scripts/lib/repository-root';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, type TestFarm } from '../helpers/farm';
import { freePort } from '../helpers/ports';

/**
 * `farm token create|list|revoke` as users run them: the compiled binary (`node bin/farm.js`)
 * against a running farm, with FARM_URL and FARM_TOKEN in the environment as CI sets them.
 */

jest.setTimeout(120_000);

const BIN = join(repositoryRoot(), 'bin', 'farm.js');
const SECRET = /^farm_[A-Za-z0-9_-]{43}$/;

let database: TestDatabase;
let farm: TestFarm;
let home: string;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/farm.js ARGS` with only PATH, HOME and `env` in its environment. */
function farmCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const asAdmin = () => ({ FARM_URL: farm.apiUrl, FARM_TOKEN: farm.adminToken });

function expectExit(result: CliResult, code: number): void {
  if (result.code !== code) {
    throw new Error(
      `expected exit ${code}, got ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`,
    );
  }
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'farm-cli-tokens-'));
  database = await createTestDatabase();
  farm = await startFarm({ databaseUrl: database.url, agents: [] });
});

afterAll(async () => {
  await farm?.stop();
  await database?.drop();
  if (home) await rm(home, { recursive: true, force: true });
});

test('create prints the secret alone on stdout; it works with exactly its scopes', async () => {
  const created = await farmCli(
    ['token', 'create', '--scope', 'builds:read', '--scope', 'builds:write', '--name', 'ci'],
    asAdmin(),
  );
  expectExit(created, 0);
  const secret = created.stdout.trim();
  expect(created.stdout).toBe(`${secret}\n`);
  expect(secret).toMatch(SECRET);
  expect(created.stderr).toContain('shown this once only');
  expect(created.stderr).toContain('builds:read, builds:write');

  const env = { FARM_URL: farm.apiUrl, FARM_TOKEN: secret };
  expectExit(await farmCli(['builds', '--json'], env), 0);
  const refused = await farmCli(['token', 'list'], env);
  expectExit(refused, 2);
  expect(refused.stderr).toContain('lacks the scope admin');
});

test('list shows name, prefix and scopes, never a secret; --json too', async () => {
  const created = await farmCli(['token', 'create', '--scope', 'agents:admin', '--name', 'ops', '--json'], asAdmin());
  expectExit(created, 0);
  const token = JSON.parse(created.stdout);
  expect(token).toMatchObject({ name: 'ops', scopes: ['agents:admin'], lastUsedAt: null, revokedAt: null });
  expect(token.secret).toMatch(SECRET);
  expect(token.secret.startsWith(token.prefix)).toBe(true);

  const table = await farmCli(['token', 'list'], asAdmin());
  expectExit(table, 0);
  const row = table.stdout.split('\n').find((line) => line.startsWith(token.id));
  expect(row).toBeDefined();
  expect(row).toMatch(/\bops\b.*agents:admin.*active/);
  expect(row).toContain(`${token.prefix}...`);
  expect(table.stdout).not.toContain(token.secret);

  const listed = await farmCli(['token', 'list', '--json'], asAdmin());
  expectExit(listed, 0);
  expect(listed.stdout).not.toContain(token.secret);
  const entry = JSON.parse(listed.stdout).tokens.find((t: { id: string }) => t.id === token.id);
  expect(Object.keys(entry).sort()).toEqual(['createdAt', 'id', 'lastUsedAt', 'name', 'prefix', 'revokedAt', 'scopes']);
});

test('revoke refuses the token from then on', async () => {
  const created = await farmCli(['token', 'create', '--scope', 'builds:read', '--json'], asAdmin());
  expectExit(created, 0);
  const { id, secret, name } = JSON.parse(created.stdout);
  expect(name.length).toBeGreaterThan(0);
  const env = { FARM_URL: farm.apiUrl, FARM_TOKEN: secret };
  expectExit(await farmCli(['builds'], env), 0);

  const revoked = await farmCli(['token', 'revoke', id], asAdmin());
  expectExit(revoked, 0);
  expect(revoked.stdout).toContain(id);
  const refused = await farmCli(['builds'], env);
  expectExit(refused, 2);
  expect(refused.stderr).toContain('refused the token');

  const listed = JSON.parse((await farmCli(['token', 'list', '--json'], asAdmin())).stdout);
  expect(listed.tokens.find((t: { id: string }) => t.id === id).revokedAt).not.toBeNull();
});

test('login takes a valid token that cannot read builds', async () => {
  const created = await farmCli(['token', 'create', '--scope', 'projects:admin'], asAdmin());
  expectExit(created, 0);
  const login = await farmCli(['login', farm.apiUrl, '--token', created.stdout.trim()], {
    FARM_CONFIG: join(home, 'projects', 'credentials.json'),
  });
  expectExit(login, 0);
  const wrong = await farmCli(['login', farm.apiUrl, '--token', `farm_${'x'.repeat(43)}`], {
    FARM_CONFIG: join(home, 'wrong', 'credentials.json'),
  });
  expectExit(wrong, 2);
});

test('usage and connection errors exit 2 and create nothing', async () => {
  const before = (await farm.request('GET', '/v1/tokens')).body.tokens.length;
  const cases: [string[], RegExp][] = [
    [['token'], /create, list or revoke/],
    [['token', 'rotate'], /unknown subcommand/],
    [['token', 'create'], /at least one --scope/],
    [['token', 'create', '--scope', 'builds:delete'], /unknown scope "builds:delete"/],
    [['token', 'create', '--scope', 'builds:read', '--name', ''], /--name/],
    [['token', 'create', '--scope'], /--scope/],
    [['token', 'revoke'], /give a token id/],
    [['token', 'revoke', 'a', 'b'], /unexpected argument/],
    [['token', 'revoke', '00000000-0000-4000-8000-000000000000'], /not found/],
  ];
  for (const [args, message] of cases) {
    const result = await farmCli(args, asAdmin());
    expect({ args, code: result.code, stdout: result.stdout }).toEqual({ args, code: 2, stdout: '' });
    expect(result.stderr).toMatch(message);
  }
  expect((await farm.request('GET', '/v1/tokens')).body.tokens.length).toBe(before);

  const closedPort = await freePort();
  const unreachable = await farmCli(['token', 'list'], {
    FARM_URL: `http://127.0.0.1:${closedPort}`,
    FARM_TOKEN: farm.adminToken,
  });
  expectExit(unreachable, 2);
  expect(unreachable.stderr).toContain('cannot reach the farm');
});
