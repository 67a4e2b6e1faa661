import { ForgeStatusError } from './errors';
import { buildStatusRequest, truncate } from './requests';
import type { CommitStatus, ForgeTarget } from './types';

const SHA = '0123456789abcdef0123456789abcdef01234567';
const status: CommitStatus = {
  commit: SHA,
  context: 'buildfarm/linux-arm64',
  state: 'pending',
  description: 'building',
  targetUrl: 'https://farm.example/builds/b1',
};
const target = (forge: ForgeTarget['forge'], apiUrl: string, repository = 'owner/repo'): ForgeTarget => ({
  forge,
  apiUrl,
  repository,
  token: 'tok-123',
});

describe('buildStatusRequest', () => {
  it('builds a GitHub request under an Enterprise base path, ignoring trailing slashes', () => {
    const req = buildStatusRequest(target('github', 'https://ghe.example/api/v3/'), status, 'ua');
    expect(req.url.href).toBe(`https://ghe.example/api/v3/repos/owner/repo/statuses/${SHA}`);
    expect(req.headers).toEqual({
      accept: 'application/vnd.github+json',
      authorization: 'Bearer tok-123',
      'content-type': 'application/json',
      'user-agent': 'ua',
      'x-github-api-version': '2022-11-28',
    });
    expect(JSON.parse(req.body)).toEqual({
      state: 'pending',
      target_url: 'https://farm.example/builds/b1',
      description: 'building',
      context: 'buildfarm/linux-arm64',
    });
  });

  it('maps GitLab states and encodes a nested project path as one segment', () => {
    for (const [state, expected] of [
      ['pending', 'pending'],
      ['success', 'success'],
      ['failure', 'failed'],
      ['error', 'failed'],
    ] as const) {
      const req = buildStatusRequest(
        target('gitlab', 'https://gl.example', 'group/sub/project'),
        { ...status, state },
        'ua',
      );
      expect(req.url.href).toBe(`https://gl.example/api/v4/projects/group%2Fsub%2Fproject/statuses/${SHA}`);
      expect(JSON.parse(req.body)).toMatchObject({ state: expected, name: 'buildfarm/linux-arm64' });
    }
  });

  it('uses a numeric GitLab project id as is', () => {
    const req = buildStatusRequest(target('gitlab', 'https://gl.example', '42'), status, 'ua');
    expect(req.url.pathname).toBe(`/api/v4/projects/42/statuses/${SHA}`);
    expect(req.headers['private-token']).toBe('tok-123');
  });

  it('treats GitLab refusing pending -> pending as already applied, and nothing else', () => {
    const pending = buildStatusRequest(target('gitlab', 'https://gl.example'), status, 'ua');
    const msg =
      '{"message":"Cannot transition status via :enqueue from :pending (Reason(s): Status cannot transition via \\"enqueue\\")"}';
    expect(pending.alreadyApplied(400, msg)).toBe(true);
    expect(pending.alreadyApplied(400, '{"message":"403 Forbidden"}')).toBe(false);
    const success = buildStatusRequest(target('gitlab', 'https://gl.example'), { ...status, state: 'success' }, 'ua');
    expect(success.alreadyApplied(400, msg)).toBe(false);
  });

  it('builds a Gitea request with a token authorization', () => {
    const req = buildStatusRequest(
      target('gitea', 'http://gitea.local:3000'),
      { ...status, targetUrl: undefined },
      'ua',
    );
    expect(req.url.href).toBe(`http://gitea.local:3000/api/v1/repos/owner/repo/statuses/${SHA}`);
    expect(req.headers.authorization).toBe('token tok-123');
    expect(JSON.parse(req.body)).toEqual({
      state: 'pending',
      description: 'building',
      context: 'buildfarm/linux-arm64',
    });
  });

  it('cuts descriptions to each forge limit', () => {
    const long = { ...status, description: 'x'.repeat(300) };
    expect(
      JSON.parse(buildStatusRequest(target('github', 'https://api.github.com'), long, 'ua').body).description,
    ).toHaveLength(140);
    expect(
      JSON.parse(buildStatusRequest(target('gitlab', 'https://gitlab.com'), long, 'ua').body).description,
    ).toHaveLength(255);
  });

  it.each([
    ['a short SHA', target('github', 'https://api.github.com'), { ...status, commit: 'abc1234' }],
    ['an unknown state', target('github', 'https://api.github.com'), { ...status, state: 'running' as never }],
    ['an empty context', target('github', 'https://api.github.com'), { ...status, context: ' ' }],
    ['a javascript: link', target('github', 'https://api.github.com'), { ...status, targetUrl: 'javascript:alert(1)' }],
    ['a three-part GitHub repository', target('github', 'https://api.github.com', 'a/b/c'), status],
    ['a dot segment', target('gitea', 'https://gitea.example', 'owner/..'), status],
    ['a one-segment GitLab path', target('gitlab', 'https://gitlab.com', 'project'), status],
    ['an ftp API URL', target('github', 'ftp://api.github.com'), status],
    ['credentials in the API URL', target('github', 'https://u:p@api.github.com'), status],
    ['an unknown forge', target('bitbucket' as never, 'https://api.bitbucket.org'), status],
  ])('refuses %s', (_what, t, s) => {
    expect(() => buildStatusRequest(t, s, 'ua')).toThrow(ForgeStatusError);
  });

  it('refuses a token that would make a bad header, without quoting it', () => {
    const bad = { ...target('github', 'https://api.github.com'), token: 'secret value\n' };
    expect(() => buildStatusRequest(bad, status, 'ua')).toThrow(/token/);
    try {
      buildStatusRequest(bad, status, 'ua');
    } catch (err) {
      expect((err as Error).message).not.toContain('secret');
    }
  });
});

describe('truncate', () => {
  it('keeps short text and cuts long text by code points with an ellipsis', () => {
    expect(truncate('abc', 3)).toBe('abc');
    expect(truncate('abcd', 3)).toBe('ab…');
    // Never splits a surrogate pair.
    expect(truncate('😀😀😀😀', 3)).toBe('😀😀…');
  });
});
