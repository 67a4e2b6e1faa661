import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deliveryInfo, type Forge, FORGES, isForge, verifyWebhookSignature, type WebhookHeaders } from '@farm/git';

const FIXTURES = join(__dirname, '../../../../test/fixtures/webhooks');
const body = (file: string): Buffer => readFileSync(join(FIXTURES, file));

const SECRET = "It's a Secret to Everybody";
const hmacHex = (secret: string, raw: Buffer) => createHmac('sha256', secret).update(raw).digest('hex');

/** The headers each forge sends to authenticate a delivery (see test/fixtures/webhooks/README.md). */
function signedBy(forge: Forge, raw: Buffer, secret = SECRET): WebhookHeaders {
  switch (forge) {
    case 'github':
      return { 'x-hub-signature-256': `sha256=${hmacHex(secret, raw)}` };
    case 'gitlab':
      return { 'x-gitlab-token': secret };
    case 'gitea':
      return { 'x-gitea-signature': hmacHex(secret, raw) };
  }
}

const DELIVERIES: [Forge, string][] = [
  ['github', 'github/push-branch-created.json'],
  ['github', 'github/push-tag-deleted.json'],
  ['github', 'github/ping.json'],
  ['gitlab', 'gitlab/push.json'],
  ['gitlab', 'gitlab/tag-push.json'],
  ['gitea', 'gitea/push.json'],
  ['gitea', 'gitea/push-branch-created.json'],
  ['gitea', 'gitea/tag-push.json'],
];

describe('verifyWebhookSignature', () => {
  test.each(DELIVERIES)('%s %s signed with the secret is genuine', (forge, file) => {
    const raw = body(file);
    expect(verifyWebhookSignature(forge, SECRET, raw, signedBy(forge, raw))).toBe(true);
  });

  test.each(DELIVERIES)('%s %s signed with another secret is refused', (forge, file) => {
    const raw = body(file);
    expect(verifyWebhookSignature(forge, SECRET, raw, signedBy(forge, raw, `${SECRET}!`))).toBe(false);
  });

  test.each(DELIVERIES.filter(([forge]) => forge !== 'gitlab'))(
    '%s %s with one byte changed is refused',
    (forge, file) => {
      const raw = body(file);
      const headers = signedBy(forge, raw);
      const tampered = Buffer.from(raw);
      tampered[tampered.indexOf('"')] = "'".charCodeAt(0);
      expect(verifyWebhookSignature(forge, SECRET, tampered, headers)).toBe(false);
      expect(verifyWebhookSignature(forge, SECRET, Buffer.concat([raw, Buffer.from('\n')]), headers)).toBe(false);
    },
  );

  test.each(FORGES)('%s without its header is refused', (forge) => {
    expect(verifyWebhookSignature(forge, SECRET, body('github/ping.json'), {})).toBe(false);
  });

  test.each(FORGES)('%s with an empty secret refuses even a matching signature', (forge) => {
    const raw = body('gitlab/push.json');
    expect(verifyWebhookSignature(forge, '', raw, signedBy(forge, raw, ''))).toBe(false);
  });

  // GitHub's documented test vector ("Validating webhook deliveries").
  test('matches the signature GitHub documents', () => {
    const headers = {
      'x-hub-signature-256': 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17',
    };
    expect(verifyWebhookSignature('github', SECRET, Buffer.from('Hello, World!'), headers)).toBe(true);
  });

  const raw = body('github/push-branch-created.json');
  const hex = hmacHex(SECRET, raw);

  test.each<[string, Forge, WebhookHeaders, boolean]>([
    ['GitHub: signature without the sha256= prefix', 'github', { 'x-hub-signature-256': hex }, false],
    ['GitHub: signature with a sha1= prefix', 'github', { 'x-hub-signature-256': `sha1=${hex}` }, false],
    ['GitHub: legacy X-Hub-Signature (SHA-1) only', 'github', { 'x-hub-signature': `sha1=${hex.slice(0, 40)}` }, false],
    ['GitHub: truncated digest', 'github', { 'x-hub-signature-256': `sha256=${hex.slice(0, 62)}` }, false],
    ['GitHub: digest with a byte more', 'github', { 'x-hub-signature-256': `sha256=${hex}00` }, false],
    ['GitHub: 64 non-hex characters', 'github', { 'x-hub-signature-256': `sha256=${'z'.repeat(64)}` }, false],
    ['GitHub: empty header', 'github', { 'x-hub-signature-256': '' }, false],
    ['GitHub: header given twice', 'github', { 'x-hub-signature-256': [`sha256=${hex}`, `sha256=${hex}`] }, false],
    ['GitHub: header as a one-element list', 'github', { 'x-hub-signature-256': [`sha256=${hex}`] }, true],
    ['GitHub: header name not lower-cased', 'github', { 'X-Hub-Signature-256': `sha256=${hex}` }, true],
    ["GitHub: Gitea's header", 'github', { 'x-gitea-signature': hex }, false],
    ['Gitea: Forgejo header alone', 'gitea', { 'x-forgejo-signature': hex }, true],
    ['Gitea: both headers, as Forgejo sends', 'gitea', { 'x-gitea-signature': hex, 'x-forgejo-signature': hex }, true],
    [
      'Gitea: both headers, one wrong',
      'gitea',
      { 'x-gitea-signature': hex, 'x-forgejo-signature': hmacHex('other', raw) },
      false,
    ],
    ['Gitea: sha256= prefixed', 'gitea', { 'x-gitea-signature': `sha256=${hex}` }, false],
    ["Gitea: GitHub's header", 'gitea', { 'x-hub-signature-256': `sha256=${hex}` }, false],
    ['GitLab: token with a prefix', 'gitlab', { 'x-gitlab-token': `x${SECRET}` }, false],
    ['GitLab: token cut short', 'gitlab', { 'x-gitlab-token': SECRET.slice(0, -1) }, false],
    ['GitLab: token in another case', 'gitlab', { 'x-gitlab-token': SECRET.toUpperCase() }, false],
    ['GitLab: same length, one character off', 'gitlab', { 'x-gitlab-token': `${SECRET.slice(0, -1)}Y` }, false],
    ['GitLab: empty token', 'gitlab', { 'x-gitlab-token': '' }, false],
    ['GitLab: token given twice', 'gitlab', { 'x-gitlab-token': [SECRET, SECRET] }, false],
    ['GitLab: HMAC instead of the token', 'gitlab', { 'x-gitlab-token': hex }, false],
    ['unknown forge', 'bitbucket' as Forge, { 'x-hub-signature-256': `sha256=${hex}` }, false],
  ])('%s', (_case, forge, headers, expected) => {
    expect(verifyWebhookSignature(forge, SECRET, raw, headers)).toBe(expected);
  });
});

describe('deliveryInfo', () => {
  test.each<[string, Forge, WebhookHeaders, ReturnType<typeof deliveryInfo>]>([
    [
      'GitHub',
      'github',
      { 'x-github-delivery': '72d3162e-cc78-11e3-81ab-4c9367dc0958', 'x-github-event': 'push' },
      { deliveryId: '72d3162e-cc78-11e3-81ab-4c9367dc0958', event: 'push' },
    ],
    [
      'GitLab',
      'gitlab',
      { 'x-gitlab-event-uuid': '13792a34-cac6-4fda-95a8-c58e00a3954e', 'x-gitlab-event': 'Tag Push Hook' },
      { deliveryId: '13792a34-cac6-4fda-95a8-c58e00a3954e', event: 'Tag Push Hook' },
    ],
    [
      'GitLab 17.4+: Idempotency-Key, kept across resends, wins',
      'gitlab',
      {
        'idempotency-key': 'f5e5f430-f57b-4e6e-9fac-d9128cd7232f',
        'x-gitlab-event-uuid': 'e1',
        'x-gitlab-event': 'Push Hook',
      },
      { deliveryId: 'f5e5f430-f57b-4e6e-9fac-d9128cd7232f', event: 'Push Hook' },
    ],
    [
      'Gitea',
      'gitea',
      { 'x-gitea-delivery': 'a1b2', 'x-gitea-event': 'create', 'x-forgejo-delivery': 'other' },
      { deliveryId: 'a1b2', event: 'create' },
    ],
    [
      'Forgejo',
      'gitea',
      { 'x-forgejo-delivery': 'f1', 'x-forgejo-event': 'push' },
      { deliveryId: 'f1', event: 'push' },
    ],
    ['no headers', 'github', {}, {}],
    ["another forge's headers", 'gitlab', { 'x-github-delivery': 'g1', 'x-github-event': 'push' }, {}],
    [
      'names not lower-cased',
      'github',
      { 'X-GitHub-Delivery': 'g1', 'X-GitHub-Event': 'push' },
      { deliveryId: 'g1', event: 'push' },
    ],
    ['id with a space', 'github', { 'x-github-delivery': 'a b', 'x-github-event': 'push' }, { event: 'push' }],
    ['id with a control character', 'github', { 'x-github-delivery': 'a\u0007' }, {}],
    ['id longer than 255', 'github', { 'x-github-delivery': 'a'.repeat(256) }, {}],
    ['id of 255', 'github', { 'x-github-delivery': 'a'.repeat(255) }, { deliveryId: 'a'.repeat(255) }],
    ['id given twice', 'github', { 'x-github-delivery': ['a', 'b'] }, {}],
    [
      'malformed Idempotency-Key falls back',
      'gitlab',
      { 'idempotency-key': '', 'x-gitlab-event-uuid': 'e1' },
      { deliveryId: 'e1' },
    ],
    ['empty event', 'github', { 'x-github-event': '' }, {}],
    ['unknown forge', 'bitbucket' as Forge, { 'x-github-delivery': 'g1' }, {}],
  ])('%s', (_case, forge, headers, expected) => {
    expect(deliveryInfo(forge, headers)).toStrictEqual(expected);
  });
});

describe('isForge', () => {
  test.each<[unknown, boolean]>([
    ['github', true],
    ['gitlab', true],
    ['gitea', true],
    ['forgejo', false],
    ['GitHub', false],
    ['', false],
    [undefined, false],
    ['toString', false],
  ])('%p', (value, expected) => {
    expect(isForge(value)).toBe(expected);
  });
});
