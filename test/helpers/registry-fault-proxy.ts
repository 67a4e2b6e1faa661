/**
 * A fault-injecting HTTP proxy in front of a registry (test/helpers/registry.ts, or a
 * RegistryProxy chained in front of it): matching requests are answered with an error status
 * (500, 503, 429 with Retry-After, ...) in the distribution API's error body, or their
 * connection is dropped without an answer, for a number of requests or until cleared. Every
 * other request is forwarded untouched, Host header included, so the registry's upload
 * Locations name this proxy and a whole push goes through it.
 *
 *   const faults = await startRegistryFaultProxy(registry.url);
 *   faults.inject({ match: isBlobUpload, fault: { status: 503 }, times: 2 });
 *   tags: [`${faults.host}/app:1`]
 */
import { request as httpRequest, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface RegistryRequest {
  method: string;
  /** Path and query, e.g. `/v2/app/blobs/uploads/`. */
  path: string;
  /** The request's Content-Type (a manifest PUT's media type), lowercased, or ''. */
  contentType: string;
  /** When it arrived (Date.now()). */
  at: number;
}

/** An HTTP error answer, or a dropped connection. */
export type RegistryFault =
  | {
      status: number;
      /** Sent as `Retry-After` (seconds). */
      retryAfterSeconds?: number;
      /** The distribution error body's `errors[0]`. Default: a code and message for the status. */
      code?: string;
      message?: string;
    }
  | { drop: true };

export interface FaultRule {
  /** Which requests get the fault. Default: every request. */
  match?: (request: RegistryRequest) => boolean;
  fault: RegistryFault;
  /** How many matching requests get it; default: every one until clear() (a permanent fault). */
  times?: number;
}

export interface InjectedFault {
  request: RegistryRequest;
  /** The status answered, or `dropped`. */
  answer: number | 'dropped';
}

export interface RegistryFaultProxy {
  /** `127.0.0.1:PORT`, for image references. */
  host: string;
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** Adds a rule; rules are checked in the order they were added, the first matching one applies. */
  inject(rule: FaultRule): void;
  /** Removes every rule: from now on every request is forwarded. */
  clear(): void;
  /** The faults injected so far, in order. */
  readonly injected: InjectedFault[];
  /** Every request seen so far (faulted or forwarded), in order. */
  readonly requests: RegistryRequest[];
  stop(): Promise<void>;
}

const DEFAULT_ERRORS: Record<number, { code: string; message: string }> = {
  429: { code: 'TOOMANYREQUESTS', message: 'too many requests' },
  500: { code: 'UNKNOWN', message: 'unknown error' },
  502: { code: 'UNAVAILABLE', message: 'bad gateway' },
  503: { code: 'UNAVAILABLE', message: 'service unavailable' },
};

/** `POST /v2/<name>/blobs/uploads/` and the `PUT`/`PATCH` that completes or continues an upload. */
export function isBlobUpload(request: RegistryRequest): boolean {
  return /^\/v2\/.+\/blobs\/uploads\//.test(request.path) && request.method !== 'GET' && request.method !== 'DELETE';
}

/** `PUT /v2/<name>/manifests/<reference>`; `kind` narrows it to image manifests or indexes. */
export function isManifestPut(request: RegistryRequest, kind?: 'image' | 'index', by?: 'tag' | 'digest'): boolean {
  const reference = /^\/v2\/.+\/manifests\/([^/?]+)/.exec(request.path)?.[1];
  if (request.method !== 'PUT' || reference === undefined) return false;
  if (by && (by === 'digest') !== reference.includes(':')) return false;
  if (!kind) return true;
  const index = /index|manifest\.list/.test(request.contentType);
  return kind === 'index' ? index : !index;
}

export async function startRegistryFaultProxy(upstream: string): Promise<RegistryFaultProxy> {
  const target = new URL(upstream);
  const rules: { rule: FaultRule; left: number }[] = [];
  const injected: InjectedFault[] = [];
  const requests: RegistryRequest[] = [];
  const sockets = new Set<Socket>();

  const faultFor = (request: RegistryRequest): RegistryFault | undefined => {
    const entry = rules.find(({ rule, left }) => left > 0 && (rule.match?.(request) ?? true));
    if (!entry) return undefined;
    entry.left--;
    return entry.rule.fault;
  };

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const upstreamRequest = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (upstreamResponse) => {
        res.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
        upstreamResponse.pipe(res);
      },
    );
    upstreamRequest.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`registry fault proxy: ${error.message}`);
    });
    req.pipe(upstreamRequest);
  };

  const server = createServer((req, res) => {
    const request: RegistryRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      contentType: (req.headers['content-type'] ?? '').toLowerCase(),
      at: Date.now(),
    };
    requests.push(request);
    const fault = faultFor(request);
    if (!fault) return forward(req, res);
    if ('drop' in fault) {
      injected.push({ request, answer: 'dropped' });
      // No answer at all: the client sees its connection reset, mid-upload for a request body.
      req.socket.destroy();
      return;
    }
    injected.push({ request, answer: fault.status });
    const known = DEFAULT_ERRORS[fault.status] ?? { code: 'UNKNOWN', message: `status ${fault.status}` };
    const body = JSON.stringify({
      errors: [{ code: fault.code ?? known.code, message: fault.message ?? known.message, detail: null }],
    });
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8',
      'docker-distribution-api-version': 'registry/2.0',
      // The request body is not read: close the connection rather than leave it half-consumed.
      connection: 'close',
    };
    if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
    res.writeHead(fault.status, headers).end(body);
    req.resume();
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
    inject: (rule) => {
      rules.push({ rule, left: rule.times ?? Number.POSITIVE_INFINITY });
    },
    clear: () => {
      rules.length = 0;
    },
    injected,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
