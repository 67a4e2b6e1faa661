import { quote } from './quote';
import { isValidTag } from './reference';

/** The push a set of tag templates is rendered for. */
export interface TagContext {
  refType: 'branch' | 'tag';
  /** Branch or tag name as git has it, e.g. `feature/x`, `v1.2.3` (no `refs/heads/`). */
  name: string;
  /** The pushed commit: 40 (or 64) lowercase hex digits. */
  commit: string;
  /** The repository's default branch; without it, `latest` never renders. */
  defaultBranch?: string;
}

/** A tag template that is malformed, or that rendered a string which is not a valid tag. */
export class TagTemplateError extends Error {
  override name = 'TagTemplateError';
}

const VARIABLES = ['branch', 'tag', 'sha', 'sha7', 'version', 'major', 'minor', 'patch'] as const;
type Variable = (typeof VARIABLES)[number];
type Part = { text: string } | { variable: Variable };

const SEMVER_PARTS: readonly Variable[] = ['major', 'minor', 'patch'];
const TAG_ONLY: readonly Variable[] = ['tag', 'version', ...SEMVER_PARTS];
const MAX_TAG_LENGTH = 128;
const LATEST = 'latest';
const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
// semver.org 2.0.0, with an optional leading "v" as tags usually have it.
const NUMBER = '0|[1-9]\\d*';
const PRE_ID = `(?:${NUMBER}|\\d*[A-Za-z-][0-9A-Za-z-]*)`;
const SEMVER = new RegExp(
  `^v?(${NUMBER})\\.(${NUMBER})\\.(${NUMBER})(?:-(${PRE_ID}(?:\\.${PRE_ID})*))?(?:\\+[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?$`,
);
const TAG_GRAMMAR = "1 to 128 of letters, digits, '_', '.' and '-', not starting with '.' or '-'";

/**
 * Renders a project's tag templates for one push, e.g. `["{branch}", "sha-{sha7}", "latest"]` for a
 * push of `feature/x` -> `["feature-x", "sha-1a2b3c4"]`.
 *
 * Variables:
 * - `{branch}` (branch pushes only), `{tag}` (tag pushes only): the name made into tag characters,
 *   case kept: every character outside `[A-Za-z0-9_.-]` becomes '-', leading '.' and '-' are
 *   dropped, and it is cut to 128 characters (`feature/x` -> `feature-x`);
 * - `{sha}` (the full commit), `{sha7}` (its first 7 digits);
 * - for tags named like semver with an optional leading v (`v1.2.3`, `1.2.3-rc.1`, `v1.2.3+build.5`):
 *   `{version}` (`1.2.3`, `1.2.3-rc.1`; build metadata dropped), `{major}`, `{minor}`, `{patch}`.
 *   For a pre-release, a template that uses `{major}`/`{minor}`/`{patch}` without `{version}`
 *   (`{major}`, `{major}.{minor}`) renders nothing, as in docker/metadata-action: `1` must not
 *   move to a release candidate.
 *
 * The template `latest`, exactly, renders only for a push of the default branch.
 *
 * A template whose variables do not apply to this push (`{branch}` on a tag, `{version}` on a tag
 * that is not semver) renders nothing rather than failing. Returns the rendered tags in template
 * order without duplicates; possibly none.
 *
 * @throws TagTemplateError for an empty template, an unknown `{variable}` or a stray brace, a
 *   context without a name or a full commit SHA, and a rendered tag that is still not a valid tag
 *   (the message names the template and what it rendered).
 */
export function renderTagTemplates(templates: string[], context: TagContext): string[] {
  checkContext(context);
  const version = context.refType === 'tag' ? parseSemver(context.name) : undefined;
  const tags = new Set<string>();
  for (const template of templates) {
    const tag = renderTemplate(template, parseTemplate(template), context, version);
    if (tag !== undefined) tags.add(tag);
  }
  return [...tags];
}

/**
 * Checks a project's tag templates when it is created or changed: at least one template; none
 * empty; only known `{variables}` and no stray braces; literal text made of tag characters, not
 * starting with '.' or '-', at most 128 characters; no template that can never render (a branch
 * variable with a tag variable, e.g. `{branch}-{version}`).
 *
 * @throws TagTemplateError naming the template and what is wrong.
 */
export function validateTagTemplates(templates: string[]): void {
  if (!Array.isArray(templates) || templates.length === 0) {
    throw new TagTemplateError('at least one tag template is required');
  }
  for (const template of templates) {
    const parts = parseTemplate(template);
    const fail = (why: string) => new TagTemplateError(`tag template ${quote(template)} ${why}`);
    const literal = parts.flatMap((part) => ('text' in part ? [part.text] : [])).join('');
    const invalid = /[^A-Za-z0-9_.-]/u.exec(literal)?.[0];
    if (invalid !== undefined) {
      throw fail(`contains ${quote(invalid)}, which cannot be part of a tag (${TAG_GRAMMAR})`);
    }
    const first = parts[0];
    if (first !== undefined && 'text' in first && /^[.-]/.test(first.text)) {
      throw fail(`starts with ${quote(first.text[0] ?? '')}, which a tag cannot start with`);
    }
    if (literal.length > MAX_TAG_LENGTH) throw fail(`is longer than ${MAX_TAG_LENGTH} characters`);
    const variables = variablesOf(parts);
    const tagOnly = TAG_ONLY.find((v) => variables.has(v));
    if (variables.has('branch') && tagOnly !== undefined) {
      throw fail(`never renders: {branch} applies to branch pushes only and {${tagOnly}} to tag pushes only`);
    }
  }
}

interface Semver {
  version: string;
  major: string;
  minor: string;
  patch: string;
  prerelease: boolean;
}

function parseSemver(name: string): Semver | undefined {
  const match = SEMVER.exec(name);
  if (!match) return undefined;
  const [, major = '', minor = '', patch = '', pre] = match;
  const version = `${major}.${minor}.${patch}${pre === undefined ? '' : `-${pre}`}`;
  return { version, major, minor, patch, prerelease: pre !== undefined };
}

function parseTemplate(template: string): Part[] {
  if (typeof template !== 'string' || template === '') throw new TagTemplateError('a tag template is empty');
  const fail = (why: string) => new TagTemplateError(`tag template ${quote(template)} ${why}`);
  const parts: Part[] = [];
  const addText = (text: string) => {
    if (/[{}]/.test(text)) {
      throw fail(
        template.includes('{{')
          ? 'has a stray brace: variables take single braces, e.g. {version}'
          : 'has a stray brace: variables are written {name}',
      );
    }
    if (text !== '') parts.push({ text });
  };
  let last = 0;
  for (const match of template.matchAll(/\{([^{}]*)\}/g)) {
    addText(template.slice(last, match.index));
    const name = match[1] ?? '';
    if (!(VARIABLES as readonly string[]).includes(name)) {
      throw fail(`uses unknown variable {${name}}; known: ${VARIABLES.map((v) => `{${v}}`).join(', ')}`);
    }
    parts.push({ variable: name as Variable });
    last = match.index + match[0].length;
  }
  addText(template.slice(last));
  return parts;
}

function renderTemplate(
  template: string,
  parts: Part[],
  context: TagContext,
  version: Semver | undefined,
): string | undefined {
  if (template === LATEST) {
    const onDefault = context.refType === 'branch' && context.name === context.defaultBranch;
    return onDefault ? LATEST : undefined;
  }
  const variables = variablesOf(parts);
  if (variables.has('branch') && context.refType !== 'branch') return undefined;
  if (variables.has('tag') && context.refType !== 'tag') return undefined;
  const semverParts = SEMVER_PARTS.some((v) => variables.has(v));
  if ((semverParts || variables.has('version')) && version === undefined) return undefined;
  if (semverParts && version?.prerelease && !variables.has('version')) return undefined;

  const value = (variable: Variable): string => {
    switch (variable) {
      case 'branch':
      case 'tag':
        return sanitize(context.name);
      case 'sha':
        return context.commit;
      case 'sha7':
        return context.commit.slice(0, 7);
      default:
        return version?.[variable] ?? '';
    }
  };
  const tag = parts.map((part) => ('text' in part ? part.text : value(part.variable))).join('');
  if (!isValidTag(tag)) {
    throw new TagTemplateError(
      `tag template ${quote(template)} rendered ${quote(tag)}${tag.length > MAX_TAG_LENGTH ? ` (${tag.length} characters)` : ''} ` +
        `for ${context.refType} ${quote(context.name)}, ` +
        `which is not a valid tag (${TAG_GRAMMAR})`,
    );
  }
  return tag;
}

/** A branch or tag name in tag characters, case kept: `feature/x` -> `feature-x`. */
function sanitize(name: string): string {
  return name
    .replace(/[^A-Za-z0-9_.-]/gu, '-')
    .replace(/^[.-]+/, '')
    .slice(0, MAX_TAG_LENGTH);
}

function variablesOf(parts: Part[]): Set<Variable> {
  return new Set(parts.flatMap((part) => ('variable' in part ? [part.variable] : [])));
}

function checkContext(context: TagContext): void {
  if (context.refType !== 'branch' && context.refType !== 'tag') {
    throw new TagTemplateError(`tag context: refType ${quote(String(context.refType))} is not "branch" or "tag"`);
  }
  if (typeof context.name !== 'string' || context.name === '') {
    throw new TagTemplateError(`tag context: the ${context.refType} name is empty`);
  }
  if (typeof context.commit !== 'string' || !COMMIT.test(context.commit)) {
    throw new TagTemplateError(`tag context: commit ${quote(String(context.commit))} is not a full commit SHA`);
  }
}
