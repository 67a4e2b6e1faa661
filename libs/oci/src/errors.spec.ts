import { describeErrorBody, errorFromResponse } from './errors';
import { retryDelay } from './http';

describe('registry error bodies', () => {
  it("reads distribution's errors[0] with its detail", () => {
    const body = JSON.stringify({
      errors: [{ code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry', detail: 'sha256:abc' }],
    });
    expect(describeErrorBody(body)).toEqual({
      code: 'MANIFEST_BLOB_UNKNOWN',
      message: 'blob unknown to registry (sha256:abc)',
    });
    expect(
      describeErrorBody(JSON.stringify({ errors: [{ code: 'DENIED', message: 'no', detail: { Tag: 'v1' } }] })),
    ).toEqual({
      code: 'DENIED',
      message: 'no ({"Tag":"v1"})',
    });
  });

  it('reads token server bodies and plain text', () => {
    expect(describeErrorBody('{"details":"invalid username or password"}')).toEqual({
      message: 'invalid username or password',
    });
    expect(describeErrorBody('<html>\n bad gateway </html>')).toEqual({ message: '<html> bad gateway </html>' });
    expect(describeErrorBody('')).toEqual({ message: undefined });
  });

  it('builds a RegistryError that says whether to retry', () => {
    const headers = new Headers({ 'retry-after': '2' });
    const err = errorFromResponse(
      'GET /v2/',
      429,
      headers,
      '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
    );
    expect(err).toMatchObject({ status: 429, code: 'TOOMANYREQUESTS', retryable: true, retryAfterMs: 2000 });
    expect(err.message).toBe('GET /v2/: HTTP 429 TOOMANYREQUESTS: slow down');
    for (const status of [500, 502, 503, 504])
      expect(errorFromResponse('x', status, new Headers(), '').retryable).toBe(true);
    for (const status of [400, 401, 403, 404, 405])
      expect(errorFromResponse('x', status, new Headers(), '').retryable).toBe(false);
  });
});

describe('retry timing', () => {
  it('backs off exponentially with jitter, and waits at least what the server asked', () => {
    for (let attempt = 0; attempt < 6; attempt++) {
      const delay = retryDelay(attempt);
      const cap = Math.min(8000, 250 * 2 ** attempt);
      expect(delay).toBeGreaterThanOrEqual(cap / 2);
      expect(delay).toBeLessThanOrEqual(cap);
    }
    expect(retryDelay(0, 5000)).toBe(5000);
    expect(retryDelay(0, 10 * 60_000)).toBe(60_000);
  });
});
