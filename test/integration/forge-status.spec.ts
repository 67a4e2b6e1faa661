import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import {
  type CommitStatus,
  ForgeStatusError,
  ForgeStatusReporter,
  type ForgeTarget,
  MANIFEST_STATUS_CONTEXT,
  platformStatusContext,
  repositoryFromCloneUrl,
} from '@farm/forge';

jest.setTimeout(30_000);

const SHA = '9fceb02d0ae598e95dc970b74767f19372d61af8';
const TOKEN = 'forge-token-7f3a9c1e';
const UA = 'buildfarm-test/1';
const LINK = 'https://farm.example/builds/b-123';

/** What the fake forge received, as the forge would see it. */
interface RecordedRequest {
  method: string;
  /** Raw request target: percent-encoding preserved. */
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** Never answer: the client must time out. */
  hang?: boolean;
}

/**
 * A real HTTP server on 127.0.0.1 standing in for a forge: records every request and answers
 * with the queued replies, then like a forge that accepted the status (201 + the status as JSON).
 */
class FakeForge {
  readonly requests: RecordedRequest[] = [];
  readonly replies: Reply[] = [];
  private server?: Server;

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const recorded: RecordedRequest = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: text ? JSON.parse(text) : undefined,
        };
        this.requests.push(recorded);
        const reply = this.replies.shift() ?? {
          status: 201,
          body: { id: this.requests.length, sha: SHA, ...(recorded.body as object) },
        };
        if (reply.hang) return;
        res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
        res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

/** Headers the client chose, without the ones fetch adds for transport. */
function chosenHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const transport = ['host', 'connection', 'content-length', 'accept-encoding', 'accept-language', 'sec-fetch-mode'];
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !transport.includes(name)));
}

function pending(context: string): CommitStatus {
  return { commit: SHA, context, state: 'pending', description: 'Building', targetUrl: LINK };
}

/** Everything an error could show in a log line or a job's failure record. */
function allTextOf(err: unknown): string {
  return `${String(err)}\n${inspect(err, { depth: 5 })}\n${JSON.stringify(err)}`;
}

async function caught(promise: Promise<unknown>): Promise<ForgeStatusError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ForgeStatusError);
    return err as ForgeStatusError;
  }
  throw new Error('expected a ForgeStatusError');
}

describe('ForgeStatusReporter against a local forge', () => {
  let forge: FakeForge;
  const reporter = new ForgeStatusReporter({ userAgent: UA });

  beforeEach(async () => {
    forge = await new FakeForge().start();
  });

  afterEach(async () => {
    await forge.stop();
  });

  it('posts a GitHub status with the documented headers and body', async () => {
    const target: ForgeTarget = { forge: 'github', apiUrl: forge.url, repository: 'octo/app', token: TOKEN };
    await reporter.report(target, pending(platformStatusContext('linux/arm64')));

    expect(forge.requests).toHaveLength(1);
    const [req] = forge.requests;
    expect(req.method).toBe('POST');
    expect(req.path).toBe(`/repos/octo/app/statuses/${SHA}`);
    expect(chosenHeaders(req.headers)).toEqual({
      authorization: `Bearer ${TOKEN}`,
      accept: 'application/vnd.github+json',
      'x-github-api-version': '2022-11-28',
      'user-agent': UA,
      'content-type': 'application/json',
    });
    expect(req.body).toEqual({
      state: 'pending',
      target_url: LINK,
      description: 'Building',
      context: 'buildfarm/linux-arm64',
    });
  });

  it('posts under a GitHub Enterprise base path and cuts the description to 140 characters', async () => {
    const target: ForgeTarget = {
      forge: 'github',
      apiUrl: `${forge.url}/api/v3/`,
      repository: 'octo/app',
      token: TOKEN,
    };
    await reporter.report(target, {
      commit: SHA,
      context: MANIFEST_STATUS_CONTEXT,
      state: 'failure',
      description: `registry refused the index: ${'x'.repeat(200)}`,
    });

    const [req] = forge.requests;
    expect(req.path).toBe(`/api/v3/repos/octo/app/statuses/${SHA}`);
    const body = req.body as Record<string, string>;
    expect(Object.keys(body).sort()).toEqual(['context', 'description', 'state']);
    expect(body.state).toBe('failure');
    expect(body.context).toBe('buildfarm/manifest');
    expect(Array.from(body.description)).toHaveLength(140);
    expect(body.description.endsWith('…')).toBe(true);
  });

  it('posts a GitLab status for a nested group, with PRIVATE-TOKEN and GitLab states', async () => {
    const target: ForgeTarget = {
      forge: 'gitlab',
      apiUrl: forge.url,
      repository: repositoryFromCloneUrl('git@gitlab.example:group/sub/project.git'),
      token: TOKEN,
    };
    await reporter.report(target, pending('buildfarm/linux-amd64'));
    await reporter.report(target, { ...pending('buildfarm/linux-amd64'), state: 'failure', description: 'exit 1' });
    await reporter.report(target, { ...pending('buildfarm/linux-amd64'), state: 'error', description: 'agent lost' });

    expect(forge.requests.map((r) => [r.method, r.path])).toEqual(
      Array(3).fill(['POST', `/api/v4/projects/group%2Fsub%2Fproject/statuses/${SHA}`]),
    );
    expect(chosenHeaders(forge.requests[0].headers)).toEqual({
      'private-token': TOKEN,
      accept: 'application/json',
      'user-agent': UA,
      'content-type': 'application/json',
    });
    expect(forge.requests.map((r) => r.body)).toEqual([
      { state: 'pending', name: 'buildfarm/linux-amd64', target_url: LINK, description: 'Building' },
      { state: 'failed', name: 'buildfarm/linux-amd64', target_url: LINK, description: 'exit 1' },
      { state: 'failed', name: 'buildfarm/linux-amd64', target_url: LINK, description: 'agent lost' },
    ]);
  });

  it('posts to a self-hosted GitLab under a sub-path and by numeric project id', async () => {
    const target: ForgeTarget = { forge: 'gitlab', apiUrl: `${forge.url}/gitlab`, repository: '1234', token: TOKEN };
    await reporter.report(target, { ...pending('buildfarm/linux-amd64'), state: 'success', description: 'pushed' });

    const [req] = forge.requests;
    expect(req.path).toBe(`/gitlab/api/v4/projects/1234/statuses/${SHA}`);
    expect(req.body).toEqual({
      state: 'success',
      name: 'buildfarm/linux-amd64',
      target_url: LINK,
      description: 'pushed',
    });
  });

  it('treats GitLab refusing pending -> pending as done', async () => {
    forge.replies.push({
      status: 400,
      body: {
        message:
          'Cannot transition status via :enqueue from :pending (Reason(s): Status cannot transition via "enqueue")',
      },
    });
    const target: ForgeTarget = { forge: 'gitlab', apiUrl: forge.url, repository: 'group/project', token: TOKEN };
    await expect(reporter.report(target, pending('buildfarm/linux-amd64'))).resolves.toBeUndefined();
    expect(forge.requests).toHaveLength(1);
  });

  it('posts a Gitea / Forgejo status with a token authorization', async () => {
    const target: ForgeTarget = {
      forge: 'gitea',
      apiUrl: `${forge.url}/`,
      repository: repositoryFromCloneUrl('https://gitea.example/team/app.git'),
      token: TOKEN,
    };
    await reporter.report(target, { ...pending('buildfarm/linux-arm-v7'), state: 'success', description: 'pushed' });

    const [req] = forge.requests;
    expect(req.method).toBe('POST');
    expect(req.path).toBe(`/api/v1/repos/team/app/statuses/${SHA}`);
    expect(chosenHeaders(req.headers)).toEqual({
      authorization: `token ${TOKEN}`,
      accept: 'application/json',
      'user-agent': UA,
      'content-type': 'application/json',
    });
    expect(req.body).toEqual({
      state: 'success',
      target_url: LINK,
      description: 'pushed',
      context: 'buildfarm/linux-arm-v7',
    });
  });

  it('reports a whole build: pending per platform and manifest, then success', async () => {
    const target: ForgeTarget = { forge: 'github', apiUrl: forge.url, repository: 'octo/app', token: TOKEN };
    const contexts = [...['linux/amd64', 'linux/arm64'].map(platformStatusContext), MANIFEST_STATUS_CONTEXT];
    await Promise.all(contexts.map((context) => reporter.report(target, pending(context))));
    for (const context of contexts) {
      await reporter.report(target, { commit: SHA, context, state: 'success', description: 'Done', targetUrl: LINK });
    }

    const seen = forge.requests.map((r) => r.body as { context: string; state: string });
    expect(
      seen
        .slice(0, 3)
        .map((s) => `${s.context}=${s.state}`)
        .sort(),
    ).toEqual(['buildfarm/linux-amd64=pending', 'buildfarm/linux-arm64=pending', 'buildfarm/manifest=pending']);
    expect(seen.slice(3).map((s) => `${s.context}=${s.state}`)).toEqual([
      'buildfarm/linux-amd64=success',
      'buildfarm/linux-arm64=success',
      'buildfarm/manifest=success',
    ]);
  });

  it('retries 5xx answers and then succeeds with the same request', async () => {
    forge.replies.push({ status: 502, body: { message: 'Server Error' } }, { status: 503, body: { message: 'busy' } });
    const target: ForgeTarget = { forge: 'gitea', apiUrl: forge.url, repository: 'team/app', token: TOKEN };
    await reporter.report(target, pending('buildfarm/linux-amd64'));

    expect(forge.requests).toHaveLength(3);
    for (const req of forge.requests) {
      expect(req.path).toBe(`/api/v1/repos/team/app/statuses/${SHA}`);
      expect(req.body).toEqual(forge.requests[0].body);
      expect(req.headers.authorization).toBe(`token ${TOKEN}`);
    }
  });

  it('waits as long as a 429 Retry-After asks', async () => {
    forge.replies.push({ status: 429, headers: { 'retry-after': '1' }, body: { message: 'slow down' } });
    const target: ForgeTarget = { forge: 'github', apiUrl: forge.url, repository: 'octo/app', token: TOKEN };
    const started = Date.now();
    await reporter.report(target, pending('buildfarm/linux-amd64'));
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(forge.requests).toHaveLength(2);
  });

  it('gives up after the retries with a retryable error', async () => {
    forge.replies.push(...Array(5).fill({ status: 500, body: { message: 'Internal Server Error' } }));
    const target: ForgeTarget = { forge: 'github', apiUrl: forge.url, repository: 'octo/app', token: TOKEN };
    const err = await caught(new ForgeStatusReporter({ retries: 1 }).report(target, pending('buildfarm/linux-amd64')));

    expect(forge.requests).toHaveLength(2);
    expect(err.status).toBe(500);
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('HTTP 500 Internal Server Error');
  });

  it('fails at once on a 4xx with the forge message and without the token', async () => {
    forge.replies.push({
      status: 422,
      body: {
        message: 'Validation Failed',
        errors: [{ resource: 'Status', code: 'custom', field: 'state', message: 'state is not included in the list' }],
        documentation_url: 'https://docs.github.com/rest/commits/statuses#create-a-commit-status',
      },
    });
    const target: ForgeTarget = { forge: 'github', apiUrl: forge.url, repository: 'octo/app', token: TOKEN };
    const err = await caught(reporter.report(target, pending('buildfarm/linux-amd64')));

    expect(forge.requests).toHaveLength(1);
    expect(err.status).toBe(422);
    expect(err.retryable).toBe(false);
    expect(err.message).toBe(
      `github status "buildfarm/linux-amd64" for octo/app@${SHA.slice(0, 12)}: HTTP 422 Validation Failed: state is not included in the list`,
    );
    expect(allTextOf(err)).not.toContain(TOKEN);
  });

  it('redacts the token when the forge echoes it back', async () => {
    forge.replies.push({ status: 401, body: { message: `401 Unauthorized: bad token ${TOKEN}` } });
    const target: ForgeTarget = { forge: 'gitlab', apiUrl: forge.url, repository: 'group/project', token: TOKEN };
    const err = await caught(reporter.report(target, pending('buildfarm/linux-amd64')));

    expect(err.status).toBe(401);
    expect(err.message).toContain('HTTP 401 401 Unauthorized: bad token ***');
    expect(allTextOf(err)).not.toContain(TOKEN);
  });

  it('times out on a forge that does not answer', async () => {
    forge.replies.push({ status: 0, hang: true });
    const target: ForgeTarget = { forge: 'gitea', apiUrl: forge.url, repository: 'team/app', token: TOKEN };
    const err = await caught(
      new ForgeStatusReporter({ timeoutMs: 200, retries: 0 }).report(target, pending('buildfarm/linux-amd64')),
    );

    expect(err.retryable).toBe(true);
    expect(err.status).toBeUndefined();
    expect(err.message).toContain('no answer within 200 ms');
  });

  it('reports a forge it cannot reach as retryable, after retrying', async () => {
    const closed = await new FakeForge().start();
    const url = closed.url;
    await closed.stop();
    const target: ForgeTarget = { forge: 'github', apiUrl: url, repository: 'octo/app', token: TOKEN };
    const err = await caught(new ForgeStatusReporter({ retries: 1 }).report(target, pending('buildfarm/linux-amd64')));

    expect(err.retryable).toBe(true);
    expect(err.message).toContain('connection failed (ECONNREFUSED)');
    expect(allTextOf(err)).not.toContain(TOKEN);
  });

  it('follows a same-origin 307 but never sends the token to another origin', async () => {
    const elsewhere = await new FakeForge().start();
    try {
      const target: ForgeTarget = { forge: 'github', apiUrl: forge.url, repository: 'octo/app', token: TOKEN };
      forge.replies.push({ status: 307, headers: { location: `/repositories/42/statuses/${SHA}` } });
      await reporter.report(target, pending('buildfarm/linux-amd64'));
      expect(forge.requests.map((r) => r.path)).toEqual([
        `/repos/octo/app/statuses/${SHA}`,
        `/repositories/42/statuses/${SHA}`,
      ]);
      expect(forge.requests[1].headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(forge.requests[1].body).toEqual(forge.requests[0].body);

      forge.replies.push({ status: 307, headers: { location: `${elsewhere.url}/repos/octo/app/statuses/${SHA}` } });
      const err = await caught(reporter.report(target, pending('buildfarm/linux-amd64')));
      expect(err.status).toBe(307);
      expect(err.retryable).toBe(false);
      expect(elsewhere.requests).toHaveLength(0);
    } finally {
      await elsewhere.stop();
    }
  });

  it('refuses a malformed target before sending anything', async () => {
    const target: ForgeTarget = { forge: 'github', apiUrl: forge.url, repository: 'group/sub/project', token: TOKEN };
    const err = await caught(reporter.report(target, pending('buildfarm/linux-amd64')));
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('owner/repo');
    expect(forge.requests).toHaveLength(0);
  });
});
