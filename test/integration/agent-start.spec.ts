import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * An agent refuses to start for a platform it cannot run natively unless emulation was
 * explicitly allowed, and refuses any platform it cannot prove it executes. Runs the real
 * compiled agent (`npm test` builds dist/ first).
 */

jest.setTimeout(30_000);

const AGENT = resolve(__dirname, '../../dist/apps/agent/src/main.js');
let stateDir: string;

beforeAll(async () => {
  if (!existsSync(AGENT)) throw new Error(`${AGENT} is missing: run "npm run build" first (npm test does)`);
  stateDir = await mkdtemp(join(tmpdir(), 'farm-agent-start-'));
});

afterAll(() => rm(stateDir, { recursive: true, force: true }));

/** Runs the agent until it exits, or until it prints `until` (then stops it with SIGTERM). */
function runAgent(
  args: string[],
  env: Record<string, string> = {},
  until?: string,
): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [AGENT, ...args], {
      env: {
        PATH: process.env.PATH ?? '',
        FARM_STATE_DIR: stateDir,
        FARM_QUEUE_PREFIX: 'farmtest-agent-start',
        ...env,
      },
    });
    let output = '';
    let stopping = false;
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      if (until && !stopping && output.includes(until)) {
        stopping = true;
        child.kill('SIGTERM');
      }
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('exit', (code) => done({ code, output }));
  });
}

test('a foreign platform without --emulated is refused, with the way to allow it', async () => {
  const { code, output } = await runAgent(['--platform', 'linux/arm64']);
  expect(code).toBe(1);
  expect(output).toContain('needs qemu-user emulation');
  expect(output).toContain('--emulated');
});

test('a platform this host cannot prove it runs is refused even with --emulated', async () => {
  const { code, output } = await runAgent(['--platform', 'linux/s390x', '--emulated']);
  expect(code).toBe(1);
  expect(output).toContain('cannot verify that this host runs linux/s390x');
});

test('an invalid platform is refused', async () => {
  const { code, output } = await runAgent(['--platform', 'linux/x86']);
  expect(code).toBe(1);
  expect(output).toContain('invalid platform');
});

test('database credentials are refused', async () => {
  const { code, output } = await runAgent([], { DATABASE_URL: 'postgresql://postgres@127.0.0.1/x' });
  expect(code).toBe(1);
  expect(output).toContain('DATABASE_URL must not be given to an agent');
});

test('an emulated platform allowed by FARM_EMULATED_PLATFORMS starts and says it is emulated', async () => {
  const serving = 'probe-test serving linux/arm64 (emulated with qemu-user)';
  const { code, output } = await runAgent(
    ['--platform', 'linux/arm64', '--name', 'probe-test'],
    { FARM_EMULATED_PLATFORMS: 'linux/arm64' },
    serving,
  );
  expect(output).toContain(serving);
  // Stopped by SIGTERM: a clean shutdown.
  expect(output).toContain('SIGTERM: finishing the current job');
  expect(code).toBe(0);
});
