import { createReadStream } from 'node:fs';
import { ConnectionError, FarmApiError } from './errors';

import type { AgentView, ApiTokenView, BuildView, CreatedApiTokenView, PlatformView } from '@farm/contract';

export type { AgentView, ApiTokenView, BuildView, CreatedApiTokenView, PlatformView };

/** `POST /v1/builds` body. */
export interface BuildRequest {
  /** The git source; an uploaded context (`contextDigest`) replaces both. */
  repo?: string;
  commit?: string;
  contextDigest?: string;
  dockerfile: string;
  context: string;
  platforms: string[];
  tags: string[];
  buildArgs?: Record<string, string>;
  target?: string;
  requires?: string[];
  noCache?: boolean;
  /** Build secret id -> value; the api seals them (FARM_SECRETS_KEY), RUN mounts them. */
  secrets?: Record<string, string>;
}

const REQUEST_TIMEOUT_MS = 30_000;

/** A thin REST v1 client: bearer token, JSON, and the farm's errors turned into {@link CliError}s. */
export class FarmClient {
  constructor(
    readonly url: string,
    private readonly token: string,
  ) {}

  createBuild(request: BuildRequest): Promise<BuildView> {
    return this.json('POST', '/v1/builds', request);
  }

  getBuild(id: string): Promise<BuildView> {
    return this.json('GET', `/v1/builds/${encodeURIComponent(id)}`);
  }

  cancelBuild(id: string): Promise<BuildView> {
    return this.json('POST', `/v1/builds/${encodeURIComponent(id)}/cancel`);
  }

  retryBuild(id: string): Promise<BuildView> {
    return this.json('POST', `/v1/builds/${encodeURIComponent(id)}/retry`);
  }

  listBuilds(query: { status?: string; limit?: number }): Promise<{ builds: BuildView[]; nextCursor: string | null }> {
    return this.json('GET', `/v1/builds${queryString(query)}`);
  }

  listAgents(): Promise<{ agents: AgentView[] }> {
    return this.json('GET', '/v1/agents');
  }

  /** The answer holds the new token's secret, which the farm never shows again. */
  createToken(request: { name: string; scopes: string[] }): Promise<CreatedApiTokenView> {
    return this.json('POST', '/v1/tokens', request);
  }

  listTokens(): Promise<{ tokens: ApiTokenView[] }> {
    return this.json('GET', '/v1/tokens');
  }

  async revokeToken(id: string): Promise<void> {
    await this.send('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
  }

  /** Whether the farm holds the uploaded build context `digest` (`HEAD /v1/contexts/{digest}`). */
  async hasContext(digest: string): Promise<boolean> {
    try {
      await this.send('HEAD', `/v1/contexts/${encodeURIComponent(digest)}`);
      return true;
    } catch (error) {
      if (error instanceof FarmApiError && error.status === 404) return false;
      throw error;
    }
  }

  /** Streams a .tar.gz build context to the farm, which checks it against `digest` before keeping it. */
  uploadContext(digest: string, file: string, size: number): Promise<{ digest: string; size: number }> {
    // At least ~100 kB/s: a large context on a slow link is not cut off after 30 s.
    const timeoutMs = REQUEST_TIMEOUT_MS + Math.ceil(size / 100);
    return this.json('POST', `/v1/contexts${queryString({ digest })}`, undefined, {
      upload: { file, size },
      timeoutMs,
    });
  }

  /** The whole log as plain text: one platform's, or every platform's with lines tagged `[platform]`. */
  async logText(id: string, platform?: string): Promise<string> {
    const response = await this.send('GET', `/v1/builds/${encodeURIComponent(id)}/logs${queryString({ platform })}`);
    return response.text();
  }

  /**
   * `GET /v1/builds/{id}/logs?follow=true`, unread: `text/event-stream` where the farm streams
   * logs, plain text where it does not yet. Never times out (a build may run for hours).
   * With `lastEventId` the farm resumes after that event.
   */
  followLogs(id: string, platform?: string, lastEventId?: string): Promise<Response> {
    const path = `/v1/builds/${encodeURIComponent(id)}/logs${queryString({ platform, follow: 'true' })}`;
    return this.send('GET', path, undefined, { accept: 'text/event-stream', timeoutMs: null, lastEventId });
  }

  private async json<T>(
    method: string,
    path: string,
    body?: unknown,
    options?: Parameters<FarmClient['send']>[3],
  ): Promise<T> {
    const response = await this.send(method, path, body, options);
    const text = await response.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ConnectionError(`${this.url} answered ${method} ${path} with something that is not the farm's API`);
    }
  }

  private async send(
    method: string,
    path: string,
    body?: unknown,
    options: {
      accept?: string;
      timeoutMs?: number | null;
      lastEventId?: string;
      /** A file sent as the body (application/gzip), streamed. */
      upload?: { file: string; size: number };
    } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.token}`,
      accept: options.accept ?? 'application/json',
    };
    if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (options.upload) {
      headers['content-type'] = 'application/gzip';
      headers['content-length'] = String(options.upload.size);
    }
    const timeoutMs = options.timeoutMs === undefined ? REQUEST_TIMEOUT_MS : options.timeoutMs;
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers,
        body: options.upload
          ? createReadStream(options.upload.file)
          : body === undefined
            ? undefined
            : JSON.stringify(body),
        signal: timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs),
        // A streamed body (the upload) needs half duplex.
        ...(options.upload && { duplex: 'half' }),
      } as RequestInit);
    } catch (error) {
      throw new ConnectionError(`cannot reach the farm at ${this.url}: ${networkReason(error)}`);
    }
    if (!response.ok) throw await apiError(response);
    return response;
  }
}

function queryString(query: Record<string, string | number | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** fetch hides the real reason (ECONNREFUSED, ENOTFOUND, a timeout) in `cause`. */
function networkReason(error: unknown): string {
  if (error instanceof Error && error.name === 'TimeoutError') return 'no answer within 30 s';
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.message ?? cause?.code ?? (error instanceof Error ? error.message : String(error));
}

async function apiError(response: Response): Promise<FarmApiError> {
  const text = await response.text().catch(() => '');
  let body: { error?: { code?: unknown; message?: unknown; field?: unknown } } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // not the farm's error body: described by the status below
  }
  const error = body.error ?? {};
  const code = typeof error.code === 'string' ? error.code : `http_${response.status}`;
  let message =
    typeof error.message === 'string'
      ? error.message
      : `${response.url} answered HTTP ${response.status} ${response.statusText}: is this the farm's URL?`;
  if (response.status === 401) message = `the farm refused the token (${message}): run "farm login URL"`;
  return new FarmApiError(response.status, code, message, typeof error.field === 'string' ? error.field : undefined);
}
