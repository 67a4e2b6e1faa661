/**
 * A redis-server of the test's own (Debian's `redis-server`, installed by scripts/setup.sh) on a
 * free loopback port, with its data in a fresh temp dir and AOF fsynced on every write, as
 * production runs it (DESIGN.md): a test can kill and restart it without touching the shared
 * Redis on 6379. Stopped and restarted by PID.
 *
 *   const redis = await startRedisServer();
 *   const farm = await startFarm({ ..., redisUrl: redis.url });
 *   await redis.restart({ downMs: 2_000 });
 *   await redis.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './ports';
import { stopTracked, track } from './processes';

export interface TestRedisServer {
  /** `redis://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** PID of the running server (changes on restart). */
  pid(): number | undefined;
  /**
   * Kills the server (SIGKILL by default: a crash, nothing flushed beyond what AOF fsynced),
   * keeps it down for `downMs`, starts it again on the same port and data dir, and resolves
   * once it answers PING with its data loaded. Returns how long it was unreachable.
   */
  restart(options?: { signal?: NodeJS.Signals; downMs?: number }): Promise<{ downMs: number }>;
  /** Stops the server and removes its data dir. Idempotent. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;

export async function startRedisServer(): Promise<TestRedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-redis-'));
  let port = 0;
  let child: ChildProcess | undefined;
  let output = '';

  const launch = async (): Promise<void> => {
    output = '';
    const server = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        // No RDB snapshots: AOF alone is what the restart relies on.
        '--save',
        '',
        '--maxmemory-policy',
        'noeviction',
        '--daemonize',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    track(server);
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-8192));
    server.stdout?.on('data', keep);
    server.stderr?.on('data', keep);
    child = server;
    await waitReady(server, port, () => output);
  };

  try {
    // The port is free when probed but may be taken before redis binds it: try again then.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        await launch();
        break;
      } catch (error) {
        if (child) await stopTracked(child);
        if (attempt < 5 && /Address already in use/i.test(output)) continue;
        throw error;
      }
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  let stopped = false;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: () => child?.pid,
    async restart({ signal = 'SIGKILL', downMs = 0 } = {}) {
      const server = child!;
      const killedAt = Date.now();
      const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
      server.kill(signal);
      await exited;
      await stopTracked(server);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, downMs - (Date.now() - killedAt))));
      await launch();
      return { downMs: Date.now() - killedAt };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child) await stopTracked(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** PING answered and the AOF loaded (a loading server answers -LOADING). */
async function waitReady(child: ChildProcess, port: number, output: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server exited: ${output()}`);
    const client = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return;
    } catch {
      // not listening yet, or still loading the AOF
    } finally {
      client.disconnect();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis-server on port ${port} did not answer within ${READY_TIMEOUT_MS} ms: ${output()}`);
}
