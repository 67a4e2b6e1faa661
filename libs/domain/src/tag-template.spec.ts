import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderTagTemplates, type TagContext, TagTemplateError, validateTagTemplates } from './tag-template';

const SHA = '6113728f27ae82c7b1a177c8d03f9e96e0adf246';
const branch = (name: string): TagContext => ({ refType: 'branch', name, commit: SHA, defaultBranch: 'main' });
const tag = (name: string): TagContext => ({ refType: 'tag', name, commit: SHA, defaultBranch: 'main' });

const SEMVER_TEMPLATES = ['{version}', '{major}.{minor}', '{major}', '{minor}', '{patch}', 'v{major}'];

describe('renderTagTemplates', () => {
  test.each<[string, string[], TagContext, string[]]>([
    // {branch}, sanitized with case kept
    ['branch', ['{branch}'], branch('main'), ['main']],
    ['slash', ['{branch}'], branch('feature/x'), ['feature-x']],
    ['case kept', ['{branch}'], branch('Feature/ABC_1'), ['Feature-ABC_1']],
    [
      'dependabot',
      ['{branch}'],
      branch('dependabot/npm_and_yarn/lodash-4.17.21'),
      ['dependabot-npm_and_yarn-lodash-4.17.21'],
    ],
    ['every character replaced', ['{branch}'], branch('a//b@c+d'), ['a--b-c-d']],
    ['one dash per character outside the BMP', ['{branch}'], branch('a🚀b'), ['a-b']],
    ['leading dashes from replaced characters dropped', ['{branch}'], branch('ünïcode'), ['n-code']],
    ['leading dots dropped', ['{branch}'], branch('_x/.y'), ['_x-.y']],
    ['cut to 128', ['{branch}'], branch('a'.repeat(200)), ['a'.repeat(128)]],
    ['with text around', ['br-{branch}-{sha7}'], branch('feature/x'), ['br-feature-x-6113728']],
    ['branch on a tag push', ['{branch}'], tag('v1.2.3'), []],
    // {tag}
    ['tag', ['{tag}'], tag('v1.2.3'), ['v1.2.3']],
    ['tag with a slash', ['{tag}'], tag('release/2024.1'), ['release-2024.1']],
    ['tag on a branch push', ['{tag}'], branch('main'), []],
    // {sha}, {sha7}
    ['sha7', ['sha-{sha7}'], branch('main'), ['sha-6113728']],
    ['sha', ['{sha}'], tag('v1'), [SHA]],
    ['SHA-256 commit', ['{sha7}'], { ...branch('main'), commit: 'b'.repeat(64) }, ['bbbbbbb']],
    // latest
    ['latest on the default branch', ['latest'], branch('main'), ['latest']],
    ['latest on another branch', ['latest'], branch('develop'), []],
    ['latest on a tag named like the default branch', ['latest'], { ...tag('main') }, []],
    ['latest without a known default branch', ['latest'], { refType: 'branch', name: 'main', commit: SHA }, []],
    ['only the exact template latest is special', ['latest-{sha7}'], branch('develop'), ['latest-6113728']],
    // semver
    ['v1.2.3', SEMVER_TEMPLATES, tag('v1.2.3'), ['1.2.3', '1.2', '1', '2', '3', 'v1']],
    ['1.2.3', SEMVER_TEMPLATES, tag('1.2.3'), ['1.2.3', '1.2', '1', '2', '3', 'v1']],
    ['v0.10.0', SEMVER_TEMPLATES, tag('v0.10.0'), ['0.10.0', '0.10', '0', '10', 'v0']],
    [
      'pre-release: only templates with {version}',
      [...SEMVER_TEMPLATES, 'v{version}'],
      tag('v1.2.3-rc.1'),
      ['1.2.3-rc.1', 'v1.2.3-rc.1'],
    ],
    ['pre-release with {version} and {major}', ['{major}-{version}'], tag('2.0.0-beta'), ['2-2.0.0-beta']],
    ['build metadata dropped from {version}', ['{version}', '{major}'], tag('v1.2.3+build.5'), ['1.2.3', '1']],
    ['build metadata is not a pre-release', ['{major}.{minor}'], tag('1.2.3+20240101'), ['1.2']],
    ['pre-release and build metadata', ['{version}'], tag('v1.0.0-alpha.1+exp.sha.5114f85'), ['1.0.0-alpha.1']],
    ['not semver: v22', [...SEMVER_TEMPLATES, '{tag}'], tag('v22'), ['v22']],
    ['not semver: two parts', SEMVER_TEMPLATES, tag('v1.2'), []],
    ['not semver: leading zero', SEMVER_TEMPLATES, tag('v01.2.3'), []],
    ['not semver: capital V', SEMVER_TEMPLATES, tag('V1.2.3'), []],
    ['not semver: leading zero in a numeric pre-release', ['{version}'], tag('1.2.3-01'), []],
    ['not semver: prefix', ['{version}'], tag('release-1.2.3'), []],
    ['semver variables on a branch named like a version', SEMVER_TEMPLATES, branch('1.2.3'), []],
    // order and duplicates
    ['template order', ['sha-{sha7}', '{branch}', 'latest'], branch('main'), ['sha-6113728', 'main', 'latest']],
    ['duplicates dropped', ['{branch}', 'main', '{branch}', 'latest'], branch('main'), ['main', 'latest']],
    [
      'a typical project on a release tag',
      ['{branch}', '{tag}', '{version}', '{major}.{minor}', '{major}', 'sha-{sha7}', 'latest'],
      tag('v2.0.0'),
      ['v2.0.0', '2.0.0', '2.0', '2', 'sha-6113728'],
    ],
    ['no templates', [], branch('main'), []],
  ])('%s', (_case, templates, context, expected) => {
    expect(renderTagTemplates(templates, context)).toStrictEqual(expected);
  });

  test.each<[string, string[], TagContext, RegExp]>([
    [
      'unknown variable',
      ['{branch}', '{foo}'],
      branch('main'),
      /tag template "\{foo\}" uses unknown variable \{foo\}; known: \{branch\}/,
    ],
    [
      'unknown variable in a template that would not apply',
      ['{tag}-{nope}'],
      branch('main'),
      /unknown variable \{nope\}/,
    ],
    ["metadata-action's double braces", ['{{version}}'], tag('v1.2.3'), /single braces, e.g. \{version\}/],
    ['unclosed brace', ['v{version'], tag('v1.2.3'), /stray brace/],
    ['closing brace alone', ['v}'], tag('v1.2.3'), /stray brace/],
    ['empty template', ['{branch}', ''], branch('main'), /a tag template is empty/],
    [
      'nothing left of the branch name',
      ['{branch}'],
      branch('---'),
      /tag template "\{branch\}" rendered "" for branch "---", which is not a valid tag/,
    ],
    [
      'too long once rendered',
      ['{branch}-{sha}'],
      branch('b'.repeat(100)),
      /rendered "b{80}…" \(141 characters\) for branch "b{80}…", which is not a valid tag/,
    ],
    ['literal space', ['my tag'], branch('main'), /tag template "my tag" rendered "my tag"/],
    ['starts with a dash', ['-{sha7}'], branch('main'), /rendered "-6113728"/],
    ['commit not a SHA', ['{sha}'], { ...branch('main'), commit: 'HEAD' }, /commit "HEAD" is not a full commit SHA/],
    ['short commit', ['{sha}'], { ...branch('main'), commit: '6113728' }, /not a full commit SHA/],
    ['empty name', ['{branch}'], branch(''), /the branch name is empty/],
  ])('%s -> TagTemplateError', (_case, templates, context, message) => {
    const render = () => renderTagTemplates(templates, context);
    expect(render).toThrow(TagTemplateError);
    expect(render).toThrow(message);
  });

  // Contexts read from the recorded forge payloads, field by field as each forge names them.
  describe('on the recorded payloads', () => {
    const payload = (file: string): Record<string, any> =>
      JSON.parse(readFileSync(join(__dirname, '../../../test/fixtures/webhooks', file), 'utf8')) as Record<string, any>;
    const templates = ['{branch}', '{tag}', '{version}', '{major}.{minor}', '{major}', 'sha-{sha7}', 'latest'];

    test.each<[string, () => TagContext, string[]]>([
      [
        'GitHub: new branch master, the default',
        () => {
          const p = payload('github/push-branch-created.json');
          return { refType: 'branch', name: 'master', commit: p.after, defaultBranch: p.repository.default_branch };
        },
        ['master', 'sha-6113728', 'latest'],
      ],
      [
        'GitLab: tag v22 (not semver) at checkout_sha',
        () => {
          const p = payload('gitlab/tag-push.json');
          return { refType: 'tag', name: 'v22', commit: p.checkout_sha, defaultBranch: p.project.default_branch };
        },
        ['v22', 'sha-16862e3'],
      ],
      [
        'Gitea: tag v1.0.0 created',
        () => {
          const p = payload('gitea/tag-push.json');
          return { refType: 'tag', name: p.ref, commit: p.sha, defaultBranch: p.repository.default_branch };
        },
        ['v1.0.0', '1.0.0', '1.0', '1', 'sha-ef98532'],
      ],
      [
        'Gitea: new branch fdsafdsa, not the default',
        () => {
          const p = payload('gitea/push-branch-created.json');
          return { refType: 'branch', name: 'fdsafdsa', commit: p.after, defaultBranch: p.repository.default_branch };
        },
        ['fdsafdsa', 'sha-28c3613'],
      ],
    ])('%s', (_case, context, expected) => {
      expect(renderTagTemplates(templates, context())).toStrictEqual(expected);
    });
  });
});

describe('validateTagTemplates', () => {
  test.each<[string[]]>([
    [['latest']],
    [['{branch}', 'sha-{sha7}', 'latest']],
    [['{tag}', '{version}', '{major}.{minor}', '{major}', 'v{major}.{minor}.{patch}']],
    [['{sha}']],
    [['_x', 'stable']],
    [['{branch}-{sha7}', '{tag}-{sha7}']],
    [['a'.repeat(128)]],
  ])('%j is valid', (templates) => {
    expect(() => validateTagTemplates(templates)).not.toThrow();
  });

  test.each<[string[], RegExp]>([
    [[], /at least one tag template is required/],
    [[''], /a tag template is empty/],
    [['{branch}', '{foo}'], /tag template "\{foo\}" uses unknown variable \{foo\}/],
    [['{{version}}'], /single braces/],
    [['v{version'], /stray brace/],
    [['my tag'], /tag template "my tag" contains " "/],
    [['{branch}/{sha7}'], /contains "\/"/],
    [['{branch}:x'], /contains ":"/],
    [['-{branch}'], /starts with "-"/],
    [['.{sha7}'], /starts with "."/],
    [['a'.repeat(129)], /longer than 128 characters/],
    [
      ['{branch}-{version}'],
      /never renders: \{branch\} applies to branch pushes only and \{version\} to tag pushes only/,
    ],
    [['{branch}{tag}'], /never renders/],
    [['{major}.{minor}-{branch}'], /never renders/],
  ])('%j -> TagTemplateError', (templates, message) => {
    const validate = () => validateTagTemplates(templates);
    expect(validate).toThrow(TagTemplateError);
    expect(validate).toThrow(message);
  });
});
