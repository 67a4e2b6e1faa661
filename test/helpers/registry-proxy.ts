/**
 * A recording, optionally slowed HTTP proxy in front of a real registry (test/helpers/registry.ts).
 * Tags that name the proxy's host send the farm's pushes through it, so a test can:
 *   - see every index digest PUT under each tag (`digestsPutUnder`), which is how the fault
 *     reports tell "published twice" (one tag, two different indexes) from a harmless retry
 *     that PUTs the same bytes again;
 *   - hold requests for a while (`setDelay`) and be told when one arrives (`nextRequest`), to
 *     kill an agent mid-push or a coordinator mid-publish at a known moment.
 * It forwards the Host header unchanged, so the registry's upload Locations name the proxy and
 * every later request of a push comes through it too. Chain it with other proxies by `upstream`.
 *
 *   const proxy = await startRegistryProxy(registry.url);
 *   tags: [`${proxy.host}/app:1`]
 */
import { execFile } from 'node:child_process';
import { request as httpRequest, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ProxiedRequest {
  method: string;
  /** Path and query, e.g. `/v2/app/manifests/1`. */
  path: string;
  /** The client's end of the connection: which process sent it (see pidOfClient). */
  clientPort: number;
}

export interface RegistryProxy {
  /** `127.0.0.1:PORT`, for image references. */
  host: string;
  /** `http://127.0.0.1:PORT` */
  url: string;
  /**
   * Digests of the manifests PUT under `repository:tag` (host left out), in order, successful
   * PUTs only. A retried publish of the same index appears twice with the same digest.
   */
  digestsPutUnder(repositoryAndTag: string): string[];
  /** Every `repository:tag` that received a manifest PUT. */
  taggedReferences(): string[];
  /** Holds each matching request `rule(request)` ms before forwarding it; undefined: no delay. */
  setDelay(rule: ((request: ProxiedRequest) => number) | undefined): void;
  /** Resolves with the next request that matches, as soon as it arrives (before any delay). */
  nextRequest(match: (request: ProxiedRequest) => boolean): Promise<ProxiedRequest>;
  stop(): Promise<void>;
}

const MANIFEST_PATH = /^\/v2\/(.+)\/manifests\/([^/?]+)$/;

export async function startRegistryProxy(upstream: string): Promise<RegistryProxy> {
  const target = new URL(upstream);
  const tagPuts = new Map<string, string[]>();
  const waiters: { match: (r: ProxiedRequest) => boolean; resolve: (r: ProxiedRequest) => void }[] = [];
  let delay: ((request: ProxiedRequest) => number) | undefined;
  const sockets = new Set<Socket>();

  const forward = (req: IncomingMessage, res: ServerResponse, seen: ProxiedRequest) => {
    const upstreamRequest = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (upstreamResponse) => {
        const manifest = MANIFEST_PATH.exec(seen.path);
        const digest = upstreamResponse.headers['docker-content-digest'];
        if (seen.method === 'PUT' && manifest && upstreamResponse.statusCode === 201 && typeof digest === 'string') {
          const [, repository, reference] = manifest;
          if (!reference.includes(':')) {
            const key = `${repository}:${reference}`;
            tagPuts.set(key, [...(tagPuts.get(key) ?? []), digest]);
          }
        }
        res.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
        upstreamResponse.pipe(res);
      },
    );
    upstreamRequest.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`registry proxy: ${error.message}`);
    });
    req.pipe(upstreamRequest);
  };

  const server = createServer((req, res) => {
    const seen: ProxiedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      clientPort: req.socket.remotePort ?? 0,
    };
    for (const waiter of waiters.filter((w) => w.match(seen))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(seen);
    }
    const holdMs = delay?.(seen) ?? 0;
    if (holdMs > 0) {
      // Paused meanwhile: the body stays in the socket until it is forwarded.
      req.pause();
      setTimeout(() => forward(req, res, seen), holdMs);
    } else {
      forward(req, res, seen);
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;

  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    digestsPutUnder: (reference) => [...(tagPuts.get(reference) ?? [])],
    taggedReferences: () => [...tagPuts.keys()],
    setDelay: (rule) => (delay = rule),
    nextRequest: (match) => new Promise((resolve) => waiters.push({ match, resolve })),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * The PID of the local process that sent a request (the owner of its connection's client end),
 * from `ss` (iproute2): how a test tells which of several farm processes is pushing.
 */
export function pidOfClient(request: ProxiedRequest): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('ss', ['-tnpH', 'state', 'established', 'sport', '=', `:${request.clientPort}`], (error, stdout) => {
      const pid = /pid=(\d+)/.exec(stdout)?.[1];
      if (error || !pid)
        reject(new Error(`no process owns 127.0.0.1:${request.clientPort}: ${error?.message ?? stdout}`));
      else resolve(Number(pid));
    });
  });
}
