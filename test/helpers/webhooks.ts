import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';

/** Real forge payloads, copied from the forges' own examples (see test/fixtures/webhooks/README.md). */
export function fixture(path: string): Buffer {
  return readFileSync(join(__dirname, '..', 'fixtures', 'webhooks', path));
}

export type Forge = 'github' | 'gitlab' | 'gitea';

/** The headers each forge sends with a delivery, signed the way that forge signs. */
export function forgeHeaders(
  forge: Forge,
  event: string,
  body: Buffer,
  secret: string,
  deliveryId: string = randomUUID(),
): Record<string, string> {
  const hmac = createHmac('sha256', secret).update(body).digest('hex');
  const json = { 'content-type': 'application/json' };
  if (forge === 'github') {
    return {
      ...json,
      'x-github-event': event,
      'x-github-delivery': deliveryId,
      'x-hub-signature-256': `sha256=${hmac}`,
    };
  }
  if (forge === 'gitlab') {
    return { ...json, 'x-gitlab-event': event, 'x-gitlab-event-uuid': deliveryId, 'x-gitlab-token': secret };
  }
  return { ...json, 'x-gitea-event': event, 'x-gitea-delivery': deliveryId, 'x-gitea-signature': hmac };
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: any;
}

/** A local HTTP server standing in for a forge's API: answers 201 and records every request. */
export async function startForgeApi(): Promise<{ url: string; requests: RecordedRequest[]; stop(): Promise<void> }> {
  const requests: RecordedRequest[] = [];
  const server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString()));
    request.on('end', () => {
      requests.push({
        method: request.method ?? '',
        path: request.url ?? '',
        headers: request.headers,
        body: text ? JSON.parse(text) : undefined,
      });
      response.writeHead(201, { 'content-type': 'application/json' }).end('{"id":1}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
