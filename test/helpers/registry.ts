/**
 * Starts a real OCI registry (Debian's `docker-registry`, distribution 2.8) for tests, on a free
 * loopback port with storage in a fresh temp dir, optionally behind htpasswd (Basic) or token
 * (Bearer) authentication. Token mode runs a small real token server in the test process that
 * checks Basic credentials and issues RS256 JWTs signed with a key the registry trusts.
 *
 *   const registry = await startRegistry({ auth: 'token' });
 *   const client = new RegistryClient({ dockerConfig: registry.dockerConfig });
 *   ...
 *   await registry.stop();
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey, randomBytes, sign, timingSafeEqual, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stopTracked, track } from './processes';

const execFileAsync = promisify(execFile);

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  /** `http://127.0.0.1:PORT` */
  url: string;
  auth: 'none' | 'basic' | 'token';
  /** The user the registry (or its token server) accepts; absent without auth. */
  credentials?: { username: string; password: string };
  /** A docker `config.json` object with `auths` for this registry (empty `auths` without auth). */
  dockerConfig: { auths: Record<string, { auth: string }> };
  /** Token mode: an OAuth2 refresh token the token server also accepts (docker's `identitytoken`). */
  identityToken?: string;
  /** Token mode: how many tokens the token server issued, by outcome. */
  tokenRequests?: { issued: number; refused: number };
  /**
   * `docker-registry garbage-collect --dry-run` on this registry's storage: the digests of the
   * blobs a collection would delete (referenced by no manifest).
   */
  garbageCollectDryRun(): Promise<string[]>;
  /** Kills the registry by PID, stops the token server, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartRegistryOptions {
  auth?: 'none' | 'basic' | 'token';
  /** Default `farm`. */
  username?: string;
  /** Default: random. */
  password?: string;
}

const SERVICE = 'buildfarm-test-registry';
const ISSUER = 'buildfarm-test-token-issuer';
const READY_TIMEOUT_MS = 15_000;

export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  const auth = options.auth ?? 'none';
  const credentials =
    auth === 'none'
      ? undefined
      : { username: options.username ?? 'farm', password: options.password ?? randomBytes(12).toString('hex') };
  const dir = await mkdtemp(join(tmpdir(), 'farm-registry-'));
  let tokenServer: TokenServer | undefined;
  try {
    let authConfig = '';
    if (auth === 'basic' && credentials) {
      const file = join(dir, 'htpasswd');
      await writeFile(file, await htpasswdLine(credentials.username, credentials.password));
      authConfig = `auth:\n  htpasswd:\n    realm: ${SERVICE}\n    path: ${JSON.stringify(file)}\n`;
    } else if (auth === 'token' && credentials) {
      tokenServer = await startTokenServer(dir, credentials);
      authConfig =
        `auth:\n  token:\n    realm: ${JSON.stringify(tokenServer.realm)}\n    service: ${SERVICE}\n` +
        `    issuer: ${ISSUER}\n    rootcertbundle: ${JSON.stringify(tokenServer.certFile)}\n`;
    }

    // The port is free when probed but may be taken before the registry binds it: try again then.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const host = `127.0.0.1:${port}`;
      const configFile = join(dir, 'config.yml');
      await writeFile(configFile, registryConfig(join(dir, 'storage'), host, authConfig));
      const child = spawn('docker-registry', ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      track(child);
      const output = tail(child);
      try {
        await waitReady(child, `http://${host}`, output);
      } catch (err) {
        await stopTracked(child);
        if (attempt < 5 && /address already in use/.test(output())) continue;
        throw err;
      }
      const token = tokenServer;
      let stopped = false;
      return {
        host,
        url: `http://${host}`,
        auth,
        credentials,
        dockerConfig: {
          auths: credentials
            ? { [host]: { auth: Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64') } }
            : {},
        },
        identityToken: token?.identityToken,
        tokenRequests: token?.counts,
        async garbageCollectDryRun() {
          const { stdout, stderr } = await execFileAsync('docker-registry', [
            'garbage-collect',
            '--dry-run',
            configFile,
          ]);
          return [...`${stdout}\n${stderr}`.matchAll(/blob eligible for deletion: (sha256:[0-9a-f]{64})/g)].map(
            (m) => m[1],
          );
        },
        async stop() {
          if (stopped) return;
          stopped = true;
          await stopTracked(child);
          await token?.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
  } catch (err) {
    await tokenServer?.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function registryConfig(storage: string, addr: string, authConfig: string): string {
  return `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${JSON.stringify(storage)}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ${JSON.stringify(addr)}
  secret: ${randomBytes(16).toString('hex')}
${authConfig}`;
}

/** A bcrypt htpasswd line from the real `htpasswd` (Debian apache2-utils); password via stdin. */
async function htpasswdLine(username: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('htpasswd', ['-niB', username], (err, stdout, stderr) => {
      if (err) reject(new Error(`htpasswd failed (is apache2-utils installed?): ${stderr || err.message}`));
      else resolve(stdout.trim() + '\n');
    });
    child.stdin?.end(`${password}\n`);
  });
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Keeps the last few KB of a child's output, for error messages; also keeps its pipes drained. */
function tail(child: ChildProcess): () => string {
  let text = '';
  const keep = (chunk: Buffer): void => {
    text = (text + chunk.toString('utf8')).slice(-8192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => text;
}

async function waitReady(child: ChildProcess, url: string, output: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exited = false;
  child.once('exit', () => (exited = true));
  while (Date.now() < deadline) {
    if (exited || child.exitCode !== null) throw new Error(`docker-registry exited: ${output()}`);
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`docker-registry did not answer ${url}/v2/ within ${READY_TIMEOUT_MS} ms: ${output()}`);
}

interface TokenServer {
  realm: string;
  certFile: string;
  identityToken: string;
  counts: { issued: number; refused: number };
  close(): Promise<void>;
}

/**
 * A token server after docker's token auth spec: `GET realm?service=&scope=` with Basic
 * credentials (or anonymous), and the OAuth2 `POST` refresh-token grant. Authenticated users get
 * every action they ask for; anonymous requests get a token granting nothing.
 */
async function startTokenServer(
  dir: string,
  credentials: { username: string; password: string },
): Promise<TokenServer> {
  const keyFile = join(dir, 'token.key');
  const certFile = join(dir, 'token.crt');
  await execFileAsync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-sha256',
    '-days',
    '2',
    '-subj',
    `/CN=${ISSUER}`,
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  const key = createPrivateKey(await readFile(keyFile));
  // distribution verifies the `x5c` chain against rootcertbundle; a self-signed leaf is its own root.
  const x5c = [new X509Certificate(await readFile(certFile)).raw.toString('base64')];
  const identityToken = randomBytes(24).toString('hex');
  const counts = { issued: 0, refused: 0 };

  const server: Server = createServer((req, res) => {
    handleTokenRequest(req, res, { key, x5c, credentials, identityToken, counts }).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certFile,
    identityToken,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface TokenContext {
  key: KeyObject;
  x5c: string[];
  credentials: { username: string; password: string };
  identityToken: string;
  counts: { issued: number; refused: number };
}

async function handleTokenRequest(req: IncomingMessage, res: ServerResponse, ctx: TokenContext): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://token');
  const refuse = (status: number, details: string): void => {
    ctx.counts.refused++;
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ details }));
  };
  if (url.pathname !== '/token') return refuse(404, 'not found');

  let params: URLSearchParams;
  let subject: string | undefined;
  if (req.method === 'POST') {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    if (params.get('grant_type') !== 'refresh_token' || !sameSecret(params.get('refresh_token'), ctx.identityToken)) {
      return refuse(401, 'invalid refresh token');
    }
    subject = ctx.credentials.username;
  } else if (req.method === 'GET') {
    params = url.searchParams;
    const header = req.headers.authorization;
    if (header) {
      const match = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header);
      const decoded = match ? Buffer.from(match[1], 'base64').toString('utf8') : '';
      const colon = decoded.indexOf(':');
      const ok =
        colon > 0 &&
        sameSecret(decoded.slice(0, colon), ctx.credentials.username) &&
        sameSecret(decoded.slice(colon + 1), ctx.credentials.password);
      if (!ok) return refuse(401, 'invalid username or password');
      subject = ctx.credentials.username;
    }
  } else {
    return refuse(405, 'method not allowed');
  }
  if (params.get('service') !== SERVICE) return refuse(400, `unknown service ${params.get('service') ?? ''}`);

  // `scope` may repeat (GET) or hold several space-separated scopes (POST form).
  const access = subject
    ? params
        .getAll('scope')
        .flatMap((s) => s.split(' '))
        .filter(Boolean)
        .map((scope) => {
          const first = scope.indexOf(':');
          const last = scope.lastIndexOf(':');
          return {
            type: scope.slice(0, first),
            name: scope.slice(first + 1, last),
            actions: scope.slice(last + 1).split(','),
          };
        })
    : [];
  const now = Math.floor(Date.now() / 1000);
  const expiresIn = 300;
  const token = jwt(ctx, {
    iss: ISSUER,
    sub: subject ?? '',
    aud: SERVICE,
    exp: now + expiresIn,
    nbf: now - 10,
    iat: now,
    jti: randomBytes(8).toString('hex'),
    access,
  });
  ctx.counts.issued++;
  res
    .writeHead(200, { 'content-type': 'application/json' })
    .end(JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() }));
}

function jwt(ctx: TokenContext, claims: object): string {
  const encode = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode({ typ: 'JWT', alg: 'RS256', x5c: ctx.x5c })}.${encode(claims)}`;
  return `${signingInput}.${sign('sha256', Buffer.from(signingInput), ctx.key).toString('base64url')}`;
}

function sameSecret(given: string | null, expected: string): boolean {
  const a = Buffer.from(given ?? '');
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
