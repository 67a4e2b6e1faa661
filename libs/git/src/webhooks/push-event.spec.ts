import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { matchesRefFilter, renderTagTemplates } from '@farm/domain';
import { type Forge, parsePushEvent, type PushIntent, WebhookPayloadError } from '@farm/git';

const FIXTURES = join(__dirname, '../../../../test/fixtures/webhooks');
const fixture = (file: string): Record<string, any> =>
  JSON.parse(readFileSync(join(FIXTURES, file), 'utf8')) as Record<string, any>;

const ZEROS = '0'.repeat(40);
const GITHUB_URLS = [
  'https://github.com/Codertocat/Hello-World.git',
  'git@github.com:Codertocat/Hello-World.git',
  'git://github.com/Codertocat/Hello-World.git',
];
const GITLAB_URLS = ['http://10.40.8.5:3200/test/woodpecker.git', 'git@10.40.8.5:test/woodpecker.git'];
const GITEA_URLS = ['http://gitea.golang.org/gordon/hello-world.git', 'git@gitea.golang.org:gordon/hello-world.git'];

describe('parsePushEvent on the recorded payloads', () => {
  test.each<[Forge, string, string, PushIntent]>([
    [
      'github',
      'push',
      'github/push-branch-created.json',
      {
        kind: 'push',
        refType: 'branch',
        name: 'master',
        ref: 'refs/heads/master',
        commit: '6113728f27ae82c7b1a177c8d03f9e96e0adf246',
        repoCloneUrls: GITHUB_URLS,
        defaultBranch: 'master',
        pusher: 'Codertocat',
      },
    ],
    [
      'github',
      'push',
      'github/push-tag-deleted.json',
      { kind: 'ignore', reason: 'tag deleted', ref: 'refs/tags/simple-tag' },
    ],
    ['github', 'ping', 'github/ping.json', { kind: 'ping' }],
    [
      'gitlab',
      'Push Hook',
      'gitlab/push.json',
      {
        kind: 'push',
        refType: 'branch',
        name: 'main',
        ref: 'refs/heads/main',
        commit: '16862e368d8ab812e48833b741dad720d6e2cb7f',
        repoCloneUrls: GITLAB_URLS,
        defaultBranch: 'develop',
        pusher: 'test',
      },
    ],
    [
      // `after` (fabed3d...) is the annotated tag object; checkout_sha is the commit it points at.
      'gitlab',
      'Tag Push Hook',
      'gitlab/tag-push.json',
      {
        kind: 'push',
        refType: 'tag',
        name: 'v22',
        ref: 'refs/tags/v22',
        commit: '16862e368d8ab812e48833b741dad720d6e2cb7f',
        repoCloneUrls: GITLAB_URLS,
        defaultBranch: 'develop',
        pusher: 'test',
      },
    ],
    [
      'gitea',
      'push',
      'gitea/push.json',
      {
        kind: 'push',
        refType: 'branch',
        name: 'main',
        ref: 'refs/heads/main',
        commit: 'ef98532add3b2feb7a137426bba1248724367df5',
        repoCloneUrls: GITEA_URLS,
        pusher: 'gordon',
      },
    ],
    [
      'gitea',
      'push',
      'gitea/push-branch-created.json',
      {
        kind: 'push',
        refType: 'branch',
        name: 'fdsafdsa',
        ref: 'refs/heads/fdsafdsa',
        commit: '28c3613ae62640216bea5e7dc71aa65356e4298b',
        repoCloneUrls: ['https://codeberg.org/meisam/woodpecktester.git', 'git@codeberg.org:meisam/woodpecktester.git'],
        defaultBranch: 'main',
        pusher: '6543',
      },
    ],
    [
      'gitea',
      'create',
      'gitea/tag-push.json',
      {
        kind: 'push',
        refType: 'tag',
        name: 'v1.0.0',
        ref: 'refs/tags/v1.0.0',
        commit: 'ef98532add3b2feb7a137426bba1248724367df5',
        repoCloneUrls: GITEA_URLS,
        defaultBranch: 'main',
        pusher: 'gordon',
      },
    ],
  ])('%s %s %s', (forge, event, file, expected) => {
    expect(parsePushEvent(forge, event, fixture(file))).toStrictEqual(expected);
  });
});

// Variants of the recorded payloads for cases no recording covers; each says what it changes.
describe('parsePushEvent on variants of the recorded payloads', () => {
  const TAG_OBJECT = 'a'.repeat(40);
  const COMMIT = '6113728f27ae82c7b1a177c8d03f9e96e0adf246';
  const githubBranch = () => fixture('github/push-branch-created.json');
  const githubTag = () => fixture('github/push-tag-deleted.json');
  const gitlabPush = () => fixture('gitlab/push.json');
  const gitlabTag = () => fixture('gitlab/tag-push.json');
  const giteaPush = () => fixture('gitea/push.json');
  const giteaCreate = () => fixture('gitea/tag-push.json');

  test.each<[string, Forge, string, Record<string, any>, Partial<PushIntent>]>([
    // GitHub
    [
      'GitHub: annotated tag created: the commit is head_commit.id, not the tag object in after',
      'github',
      'push',
      { ...githubTag(), after: TAG_OBJECT, deleted: false, created: true, head_commit: { id: COMMIT } },
      { kind: 'push', refType: 'tag', name: 'simple-tag', commit: COMMIT },
    ],
    [
      'GitHub: tag without head_commit: after',
      'github',
      'push',
      { ...githubTag(), after: COMMIT, deleted: false },
      { kind: 'push', refType: 'tag', commit: COMMIT },
    ],
    [
      'GitHub: branch push uses after even when head_commit differs',
      'github',
      'push',
      { ...githubBranch(), head_commit: { id: TAG_OBJECT } },
      { kind: 'push', refType: 'branch', commit: COMMIT },
    ],
    [
      'GitHub: branch deleted',
      'github',
      'push',
      { ...githubBranch(), after: ZEROS, deleted: true, head_commit: null },
      { kind: 'ignore', reason: 'branch deleted', ref: 'refs/heads/master' },
    ],
    [
      'GitHub: deleted flag alone',
      'github',
      'push',
      { ...githubBranch(), deleted: true },
      { kind: 'ignore', reason: 'branch deleted' },
    ],
    [
      'GitHub: SHA-256 repository deletion',
      'github',
      'push',
      { ...githubBranch(), after: '0'.repeat(64), deleted: false },
      { kind: 'ignore', reason: 'branch deleted' },
    ],
    [
      'GitHub: branch name with slashes',
      'github',
      'push',
      { ...githubBranch(), ref: 'refs/heads/feature/x' },
      { kind: 'push', refType: 'branch', name: 'feature/x', ref: 'refs/heads/feature/x' },
    ],
    [
      'GitHub: a ref that is neither branch nor tag',
      'github',
      'push',
      { ...githubBranch(), ref: 'refs/notes/commits' },
      { kind: 'ignore', reason: 'ref "refs/notes/commits" is neither a branch nor a tag', ref: 'refs/notes/commits' },
    ],
    [
      'GitHub: pusher falls back to the sender',
      'github',
      'push',
      { ...githubBranch(), pusher: undefined },
      { kind: 'push', pusher: 'Codertocat' },
    ],
    ['GitHub: ping with any body', 'github', 'ping', {}, { kind: 'ping' }],
    [
      'GitHub: create (tags arrive as push)',
      'github',
      'create',
      githubBranch(),
      { kind: 'ignore', reason: 'event "create" is not built' },
    ],
    ['GitHub: issues', 'github', 'issues', githubBranch(), { kind: 'ignore', reason: 'event "issues" is not built' }],
    ['GitHub: no event header', 'github', '', githubBranch(), { kind: 'ignore', reason: 'event "" is not built' }],
    // GitLab
    [
      'GitLab: branch deleted (checkout_sha null, after zeros)',
      'gitlab',
      'Push Hook',
      { ...gitlabPush(), after: ZEROS, checkout_sha: null },
      { kind: 'ignore', reason: 'branch deleted', ref: 'refs/heads/main' },
    ],
    [
      'GitLab: tag deleted',
      'gitlab',
      'Tag Push Hook',
      { ...gitlabTag(), before: TAG_OBJECT, after: ZEROS, checkout_sha: null },
      { kind: 'ignore', reason: 'tag deleted', ref: 'refs/tags/v22' },
    ],
    [
      'GitLab: checkout_sha null without a deletion',
      'gitlab',
      'Tag Push Hook',
      { ...gitlabTag(), checkout_sha: null },
      { kind: 'ignore', reason: 'the payload names no commit to build (checkout_sha is null)', ref: 'refs/tags/v22' },
    ],
    [
      'GitLab: no checkout_sha at all: after',
      'gitlab',
      'Push Hook',
      { ...gitlabPush(), checkout_sha: undefined },
      { kind: 'push', commit: '16862e368d8ab812e48833b741dad720d6e2cb7f' },
    ],
    [
      'GitLab: pusher falls back to user_name',
      'gitlab',
      'Push Hook',
      { ...gitlabPush(), user_username: undefined },
      { kind: 'push', pusher: 'the test' },
    ],
    [
      'GitLab: a System Hook is not built',
      'gitlab',
      'System Hook',
      gitlabPush(),
      { kind: 'ignore', reason: 'event "System Hook" is not built' },
    ],
    [
      'GitLab: merge requests are not built',
      'gitlab',
      'Merge Request Hook',
      gitlabPush(),
      { kind: 'ignore', reason: 'event "Merge Request Hook" is not built' },
    ],
    [
      'GitLab: event names are exact',
      'gitlab',
      'push hook',
      gitlabPush(),
      { kind: 'ignore', reason: 'event "push hook" is not built' },
    ],
    // Gitea / Forgejo
    [
      'Gitea: a tag through the push event: head_commit.id',
      'gitea',
      'push',
      { ...giteaPush(), ref: 'refs/tags/v1.0.0', after: TAG_OBJECT, head_commit: { id: COMMIT } },
      { kind: 'push', refType: 'tag', name: 'v1.0.0', ref: 'refs/tags/v1.0.0', commit: COMMIT },
    ],
    [
      'Gitea: branch deleted through the push event',
      'gitea',
      'push',
      { ...giteaPush(), after: ZEROS },
      { kind: 'ignore', reason: 'branch deleted', ref: 'refs/heads/main' },
    ],
    [
      'Gitea: create of a branch is built from its push',
      'gitea',
      'create',
      { ...giteaCreate(), ref: 'feature/x', ref_type: 'branch' },
      { kind: 'ignore', reason: 'a created branch is built from its push event', ref: 'refs/heads/feature/x' },
    ],
    [
      'Gitea: create with a full tag ref',
      'gitea',
      'create',
      { ...giteaCreate(), ref: 'refs/tags/v1.0.0' },
      { kind: 'push', refType: 'tag', name: 'v1.0.0', ref: 'refs/tags/v1.0.0' },
    ],
    [
      'Gitea: delete of a tag',
      'gitea',
      'delete',
      { ...giteaCreate(), sha: undefined },
      { kind: 'ignore', reason: 'tag deleted' },
    ],
    [
      'Gitea: delete of a branch',
      'gitea',
      'delete',
      { ...giteaCreate(), ref: 'main', ref_type: 'branch' },
      { kind: 'ignore', reason: 'branch deleted' },
    ],
    ['Gitea: delete without a body', 'gitea', 'delete', [], { kind: 'ignore', reason: 'ref deleted' }],
    [
      'Gitea: pull requests are not built',
      'gitea',
      'pull_request',
      giteaPush(),
      { kind: 'ignore', reason: 'event "pull_request" is not built' },
    ],
    ['Gitea: no ping event', 'gitea', 'ping', giteaPush(), { kind: 'ignore', reason: 'event "ping" is not built' }],
  ])('%s', (_case, forge, event, payload, expected) => {
    expect(parsePushEvent(forge, event, payload)).toMatchObject(expected);
  });
});

describe('parsePushEvent refuses malformed payloads of supported events', () => {
  const github = fixture('github/push-branch-created.json');
  const gitlab = fixture('gitlab/tag-push.json');
  const gitea = fixture('gitea/push.json');
  const create = fixture('gitea/tag-push.json');

  test.each<[string, Forge, string, unknown, RegExp]>([
    ['not an object', 'github', 'push', null, /^push payload is not a JSON object$/],
    ['an array', 'gitlab', 'Push Hook', [], /not a JSON object/],
    ['a string', 'gitea', 'push', 'refs/heads/main', /not a JSON object/],
    ['no ref', 'github', 'push', { ...github, ref: undefined }, /"ref" is missing/],
    ['empty ref', 'gitlab', 'Tag Push Hook', { ...gitlab, ref: '' }, /"ref" is "", expected a non-empty string/],
    ['numeric ref', 'gitea', 'push', { ...gitea, ref: 1 }, /"ref" is 1/],
    ['no after', 'github', 'push', { ...github, after: undefined }, /"after" is missing/],
    ['no after (GitLab)', 'gitlab', 'Tag Push Hook', { ...gitlab, after: undefined }, /"after" is missing/],
    ['no after (Gitea)', 'gitea', 'push', { ...gitea, after: undefined }, /"after" is missing/],
    [
      'short after',
      'github',
      'push',
      { ...github, after: '6113728' },
      /"after" is "6113728", expected a full commit SHA/,
    ],
    [
      'uppercase after',
      'gitea',
      'push',
      { ...gitea, after: 'EF98532ADD3B2FEB7A137426BBA1248724367DF5' },
      /full commit SHA/,
    ],
    ['ref with ..', 'github', 'push', { ...github, ref: 'refs/heads/a..b' }, /invalid ref "refs\/heads\/a\.\.b"/],
    ['ref with a space', 'gitlab', 'Push Hook', { ...gitlab, ref: 'refs/heads/a b' }, /whitespace/],
    ['ref starting with -', 'gitea', 'push', { ...gitea, ref: '-x' }, /starts with '-'/],
    ['empty branch name', 'github', 'push', { ...github, ref: 'refs/heads/' }, /empty '\/' component/],
    [
      'tag with a malformed head_commit',
      'github',
      'push',
      { ...github, ref: 'refs/tags/v1', head_commit: { id: 'nope' } },
      /"head_commit.id \/ after" is "nope"/,
    ],
    [
      'head_commit not an object',
      'github',
      'push',
      { ...github, ref: 'refs/tags/v1', head_commit: 'x' },
      /"head_commit" is not an object/,
    ],
    ['checkout_sha a number', 'gitlab', 'Tag Push Hook', { ...gitlab, checkout_sha: 42 }, /"checkout_sha" is 42/],
    ['create without sha', 'gitea', 'create', { ...create, sha: undefined }, /"sha" is missing/],
    ['create with a short sha', 'gitea', 'create', { ...create, sha: 'ef98532' }, /"sha" is "ef98532"/],
    ['create without ref', 'gitea', 'create', { ...create, ref: undefined }, /"ref" is missing/],
    ['create without ref_type', 'gitea', 'create', { ...create, ref_type: undefined }, /"ref_type" is undefined/],
    [
      'create of a tag with a bad name',
      'gitea',
      'create',
      { ...create, ref: 'v1~1' },
      /invalid ref "refs\/tags\/v1~1"/,
    ],
  ])('%s', (_case, forge, event, payload, message) => {
    const parse = () => parsePushEvent(forge, event, payload);
    expect(parse).toThrow(WebhookPayloadError);
    expect(parse).toThrow(message);
  });

  test('long values are cut short in the message', () => {
    const parse = () => parsePushEvent('github', 'push', { ...github, after: 'x'.repeat(1000) });
    expect(parse).toThrow(/"x{79}…/);
  });
});

// The path a delivery takes in the api: payload -> intent -> project filters -> tags.
describe('recorded payloads through the project filters and tag templates', () => {
  const templates = ['{branch}', '{tag}', '{version}', '{major}.{minor}', 'sha-{sha7}', 'latest'];

  test.each<[Forge, string, string, string[] | undefined, string[]]>([
    ['github', 'push', 'github/push-branch-created.json', undefined, ['master', 'sha-6113728', 'latest']],
    ['gitlab', 'Push Hook', 'gitlab/push.json', ['main', 'release/**'], ['main', 'sha-16862e3']],
    ['gitlab', 'Tag Push Hook', 'gitlab/tag-push.json', ['v*'], ['v22', 'sha-16862e3']],
    ['gitea', 'create', 'gitea/tag-push.json', ['v*.*.*'], ['v1.0.0', '1.0.0', '1.0', 'sha-ef98532']],
    ['gitea', 'push', 'gitea/push-branch-created.json', ['!main'], ['fdsafdsa', 'sha-28c3613']],
  ])('%s %s %s', (forge, event, file, filter, tags) => {
    const intent = parsePushEvent(forge, event, fixture(file));
    if (intent.kind !== 'push') throw new Error(`expected a push, got ${intent.kind}`);
    expect(matchesRefFilter(intent.name, filter)).toBe(true);
    expect(renderTagTemplates(templates, intent)).toStrictEqual(tags);
  });

  test('a filter that leaves the ref out', () => {
    const intent = parsePushEvent('gitea', 'push', fixture('gitea/push-branch-created.json'));
    expect(intent.kind === 'push' && matchesRefFilter(intent.name, ['main', 'release/*'])).toBe(false);
  });
});
