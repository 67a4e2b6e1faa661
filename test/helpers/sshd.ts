/**
 * Starts a real OpenSSH server (Debian's openssh-server) for tests: generated host and client
 * keys, root login by key only, state in a fresh temp dir.
 *
 * When this machine allows it (root, `ip netns`), sshd runs in a network namespace of its own
 * joined to this one by a veth pair with a random 10.x.y.0/30 subnet: the SSH host is then a
 * separate host with its own address (10.x.y.2:22) that reaches this machine only at 10.x.y.1.
 * Otherwise it listens on a free loopback port. Either way it shares this machine's files and
 * processes, so the SSH host has buildah and git, and tests can inspect its processes.
 *
 *   const sshd = await startSshd();
 *   const registryForHost = await sshd.reach(registryPort); // "10.x.y.1:PORT" or "127.0.0.1:PORT"
 *   ... connect to sshd.url with sshd.clientKey, pinning sshd.hostKeyFingerprint ...
 *   await sshd.stop();
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports';
import { stopTracked, track } from './processes';

const run = promisify(execFile);
const READY_TIMEOUT_MS = 10_000;

export interface TestSshd {
  /** The address clients connect to: 10.x.y.2 in a namespace, else 127.0.0.1. */
  host: string;
  port: number;
  /** `ssh://root@HOST:PORT` */
  url: string;
  /** An OpenSSH private key (ed25519) that the server accepts for root. */
  clientKey: Buffer;
  /** The server's host key as a known_hosts line, e.g. `[127.0.0.1]:2222 ssh-ed25519 AAAA...`. */
  knownHostsLine: string;
  /** The server's host key fingerprint as `ssh-keygen -lf` prints it: `SHA256:...`. */
  hostKeyFingerprint: string;
  /** `netns` when sshd runs in a network namespace of its own, `loopback` when that was not possible. */
  isolation: 'netns' | 'loopback';
  /** Why the namespace could not be used (loopback only). */
  isolationProblem?: string;
  /**
   * Makes a TCP service listening on this machine's loopback (e.g. a test registry) reachable
   * from the SSH host, and returns `host:port` as the SSH host must address it.
   */
  reach(port: number): Promise<string>;
  /** PIDs of the sshd processes serving connections (not the listener). */
  sessionPids(): Promise<number[]>;
  /**
   * Cuts every connection at once by killing the sshd processes serving them (SIGKILL), as a
   * crashing or rebooting host would; the listener keeps accepting new connections.
   */
  dropConnections(): Promise<void>;
  /**
   * Namespace only: takes the link to the SSH host down (or up again). Packets are dropped
   * silently, without a reset: only keepalives notice, as with a host that lost power.
   */
  setLinkUp(up: boolean): Promise<void>;
  /** Kills sshd and the processes serving connections by PID, removes the namespace and temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartSshdOptions {
  /** `auto` (default): a network namespace when possible, else loopback. */
  isolation?: 'auto' | 'loopback';
}

export async function startSshd(options: StartSshdOptions = {}): Promise<TestSshd> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-sshd-'));
  const cleanups: (() => Promise<unknown>)[] = [async () => rm(dir, { recursive: true, force: true })];
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) await step().catch(() => undefined);
    cleanups.length = 0;
  };
  try {
    // sshd's privilege separation directory is compiled in; Debian creates it at boot only.
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'farm-test-host', '-f', join(dir, 'host_key')]);
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'farm-test-client', '-f', join(dir, 'client_key')]);
    await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'client_key.pub')), { mode: 0o600 });
    const hostPublicKey = (await readFile(join(dir, 'host_key.pub'), 'utf8')).trim().split(/\s+/);
    const { stdout: fingerprintLine } = await run('ssh-keygen', [
      '-l',
      '-E',
      'sha256',
      '-f',
      join(dir, 'host_key.pub'),
    ]);
    const hostKeyFingerprint = fingerprintLine.split(/\s+/)[1] as string;

    let network: Namespace | undefined;
    let isolationProblem: string | undefined;
    try {
      if (options.isolation === 'loopback') throw new Error('loopback was asked for');
      network = await createNamespace();
      const ns = network;
      cleanups.push(() => ns.remove());
    } catch (error) {
      isolationProblem = (error as Error).message;
    }

    let sshd: ChildProcess | undefined;
    let host = '127.0.0.1';
    let port = 22;
    for (let attempt = 1; ; attempt++) {
      if (network) host = network.address;
      else port = await freePort();
      const config = join(dir, 'sshd_config');
      await writeFile(config, sshdConfig(dir, host, port));
      const command = network ? 'ip' : '/usr/sbin/sshd';
      const args = ['-D', '-e', '-f', config];
      // `ip netns exec` enters the namespace and execs sshd in place: the PID is sshd's.
      const child = spawn(command, network ? ['netns', 'exec', network.name, '/usr/sbin/sshd', ...args] : args, {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      track(child);
      const output = keepTail(child);
      try {
        await waitForBanner(child, host, port, output);
        sshd = child;
        break;
      } catch (error) {
        await stopTracked(child);
        if (!network && attempt < 5 && /Address already in use/i.test(output())) continue;
        throw error;
      }
    }
    const listener = sshd;
    cleanups.push(() => stopTracked(listener));

    const forwarders: Server[] = [];
    cleanups.push(() => Promise.all(forwarders.map(closeServer)));
    const sessionPids = async (): Promise<number[]> => (listener.pid ? liveSshdDescendants(listener.pid) : []);
    const dropConnections = async (): Promise<void> => {
      for (const pid of await sessionPids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    };

    const hostPattern = port === 22 ? host : `[${host}]:${port}`;
    let stopped = false;
    return {
      host,
      port,
      url: `ssh://root@${host}:${port}`,
      clientKey: await readFile(join(dir, 'client_key')),
      knownHostsLine: `${hostPattern} ${hostPublicKey[0]} ${hostPublicKey[1]}`,
      hostKeyFingerprint,
      isolation: network ? 'netns' : 'loopback',
      isolationProblem,
      async reach(target: number): Promise<string> {
        if (!network) return `127.0.0.1:${target}`;
        const server = await forward(network.hostAddress, target);
        forwarders.push(server);
        const address = server.address();
        if (typeof address !== 'object' || !address) throw new Error('forwarder has no address');
        return `${network.hostAddress}:${address.port}`;
      },
      sessionPids,
      dropConnections,
      async setLinkUp(up: boolean): Promise<void> {
        if (!network) throw new Error(`sshd runs on loopback (${isolationProblem}): there is no link to take down`);
        await run('ip', ['link', 'set', network.hostLink, up ? 'up' : 'down']);
      },
      async stop(): Promise<void> {
        if (stopped) return;
        stopped = true;
        await dropConnections();
        await cleanup();
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

function sshdConfig(dir: string, host: string, port: number): string {
  return [
    `ListenAddress ${host}:${port}`,
    `HostKey ${join(dir, 'host_key')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    // No PAM session setup (limits, motd, systemd-logind) for a test server.
    'UsePAM no',
    // The key files live under /tmp, which is world-writable.
    'StrictModes no',
    'UseDNS no',
    'PrintMotd no',
    'X11Forwarding no',
    'AllowTcpForwarding no',
    'MaxSessions 64',
    'MaxStartups 64',
    'LogLevel ERROR',
    '',
  ].join('\n');
}

interface Namespace {
  name: string;
  /** The SSH host's address inside the namespace. */
  address: string;
  /** This machine's address on the link to the namespace. */
  hostAddress: string;
  /** This machine's end of the veth pair. */
  hostLink: string;
  remove(): Promise<void>;
}

/** A network namespace with loopback up and a veth pair to this one; addresses only on that pair. */
async function createNamespace(): Promise<Namespace> {
  const id = randomBytes(3).toString('hex');
  const name = `farm-sshd-${id}`;
  const hostLink = `fs${id}h`;
  const nsLink = `fs${id}n`;
  const { stdout } = await run('ip', ['-4', '-o', 'addr', 'show']);
  let subnet: string;
  do {
    const [a, b] = randomBytes(2);
    subnet = `10.${200 + ((a as number) % 50)}.${b}`;
  } while (stdout.includes(` ${subnet}.`));
  const hostAddress = `${subnet}.1`;
  const address = `${subnet}.2`;

  const ip = (...args: string[]) => run('ip', args);
  const remove = async (): Promise<void> => {
    // Removing one end removes the pair; the namespace goes once no process is left in it.
    await ip('link', 'del', hostLink).catch(() => undefined);
    await ip('netns', 'del', name).catch(() => undefined);
  };
  try {
    await ip('netns', 'add', name);
    await ip('link', 'add', hostLink, 'type', 'veth', 'peer', 'name', nsLink, 'netns', name);
    await ip('addr', 'add', `${hostAddress}/30`, 'dev', hostLink);
    await ip('link', 'set', hostLink, 'up');
    await ip('-n', name, 'link', 'set', 'lo', 'up');
    await ip('-n', name, 'addr', 'add', `${address}/30`, 'dev', nsLink);
    await ip('-n', name, 'link', 'set', nsLink, 'up');
  } catch (error) {
    await remove();
    const { stderr } = error as { stderr?: string };
    throw new Error(`cannot create a network namespace: ${(stderr ?? (error as Error).message).trim()}`);
  }
  return { name, address, hostAddress, hostLink, remove };
}

/** A TCP forwarder on `address` (a new port) to `127.0.0.1:port`. */
async function forward(address: string, port: number): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  (server as Server & { sockets?: Set<Socket> }).sockets = sockets;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, address, resolve);
  });
  return server;
}

function closeServer(server: Server): Promise<void> {
  for (const socket of (server as Server & { sockets?: Set<Socket> }).sockets ?? []) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Waits until sshd answers with its `SSH-2.0-` banner. */
async function waitForBanner(child: ChildProcess, host: string, port: number, output: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`sshd exited: ${output()}`);
    const banner = await new Promise<string>((resolve) => {
      const socket = connect(port, host);
      let text = '';
      const done = (): void => {
        socket.destroy();
        resolve(text);
      };
      socket.setTimeout(1000, done);
      socket.on('data', (chunk) => {
        text += chunk.toString('latin1');
        if (text.includes('\n')) done();
      });
      socket.on('error', done);
      socket.on('close', done);
    });
    if (banner.startsWith('SSH-2.0-')) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`sshd did not answer on ${host}:${port} within ${READY_TIMEOUT_MS} ms: ${output()}`);
}

/** Live (not zombie) processes named sshd below `root`: the per-connection monitors and sessions. */
async function liveSshdDescendants(root: number): Promise<number[]> {
  const parents = new Map<number, { ppid: number; name: string; state: string }>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may contain spaces and parentheses, so cut at the last ')'.
      const close = stat.lastIndexOf(')');
      const name = stat.slice(stat.indexOf('(') + 1, close);
      const [state, ppid] = stat.slice(close + 2).split(' ');
      parents.set(Number(entry), { ppid: Number(ppid), name, state: state as string });
    } catch {
      // exited meanwhile
    }
  }
  const below = (pid: number): boolean => {
    for (let p = parents.get(pid)?.ppid; p !== undefined && p > 1; p = parents.get(p)?.ppid) {
      if (p === root) return true;
    }
    return false;
  };
  return [...parents]
    .filter(([pid, info]) => info.name === 'sshd' && info.state !== 'Z' && below(pid))
    .map(([pid]) => pid);
}

function keepTail(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-8192);
  });
  return () => text;
}
