import { readFile } from 'node:fs/promises';
import { machine } from 'node:os';
import { formatPlatform, parsePlatform, platformFromMachine } from '@farm/domain';
import { readCheckout } from '../checkout';
import { type CliContext, farmClient, parseCommand } from '../context';
import { ConnectionError, EXIT, FarmApiError, UsageError } from '../errors';
import type { BuildRequest, BuildView, FarmClient } from '../farm-client';
import { formatDuration, lastLines } from '../format';
import { ProgressView } from '../progress';
import { uploadContext } from '../upload';

const POLL_INTERVAL_MS = 500;
/** How long the farm may be unreachable while a build runs before the CLI gives up following it. */
const MAX_UNREACHABLE_MS = 30_000;
const LOG_TAIL_LINES = 30;
const ENDED = new Set(['succeeded', 'failed', 'canceled']);

const OPTIONS = {
  platform: { type: 'string', multiple: true },
  tag: { type: 'string', short: 't', multiple: true },
  'build-arg': { type: 'string', multiple: true },
  target: { type: 'string' },
  file: { type: 'string', short: 'f' },
  require: { type: 'string', multiple: true },
  'no-wait': { type: 'boolean' },
  json: { type: 'boolean' },
  upload: { type: 'boolean' },
  'no-cache': { type: 'boolean' },
  secret: { type: 'string', multiple: true },
} as const;

/**
 * `farm build [PATH] -t TAG...`: builds the HEAD commit of the git checkout around PATH, as the
 * farm's agents clone it from `origin`, and follows it with a per-platform live view. With
 * `--upload` it builds the directory PATH as it is instead (uncommitted files too, as
 * `.dockerignore` leaves them), uploaded to the farm as a context archive.
 * Exit 0 when the index is published, 1 when the build failed or was canceled.
 */
export async function build(argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand(argv, OPTIONS, 1);
  const flags = {
    platforms: platforms(values.platform),
    tags: tags(values.tag),
    buildArgs: buildArgs(values['build-arg']),
    requires: values.require ?? [],
    secrets: await secrets(values.secret),
  };

  const client = await farmClient(ctx);
  const path = positionals[0] ?? '.';
  const source = values.upload
    ? await uploadedSource(client, path, values.file, ctx)
    : await checkoutSource(path, values.file, ctx);
  const request: BuildRequest = {
    ...source,
    platforms: flags.platforms,
    tags: flags.tags,
    ...(Object.keys(flags.buildArgs).length > 0 ? { buildArgs: flags.buildArgs } : {}),
    ...(values.target !== undefined ? { target: values.target } : {}),
    ...(flags.requires.length > 0 ? { requires: flags.requires } : {}),
    ...(values['no-cache'] ? { noCache: true } : {}),
    ...(Object.keys(flags.secrets).length > 0 ? { secrets: flags.secrets } : {}),
  };

  const submitted = await client.createBuild(request);
  if (values['no-wait']) {
    ctx.stdout.write(values.json ? `${JSON.stringify(submitted, null, 2)}\n` : `${submitted.id}\n`);
    return EXIT.ok;
  }
  if (values.json) {
    const ended = await follow(client, submitted.id, () => undefined);
    ctx.stdout.write(`${JSON.stringify(ended, null, 2)}\n`);
    return ended.status === 'succeeded' ? EXIT.ok : EXIT.buildFailed;
  }

  const built = submitted.contextDigest
    ? `uploaded context ${submitted.contextDigest.slice(0, 19)}`
    : `${submitted.repo} @ ${submitted.commit.slice(0, 12)}`;
  ctx.stdout.write(`build ${submitted.id}  ${built}\n`);
  const view = new ProgressView(ctx.stdout);
  const interrupted = () => {
    view.release();
    ctx.stderr.write(`\ninterrupted: build ${submitted.id} goes on (farm show ${submitted.id})\n`);
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  let ended: BuildView;
  try {
    ended = await follow(client, submitted.id, (current) => view.update(current));
  } finally {
    view.release();
    process.off('SIGINT', interrupted);
  }
  return report(ended, client, ctx);
}

type Source = Pick<BuildRequest, 'repo' | 'commit' | 'contextDigest' | 'context' | 'dockerfile'>;

/** The checkout's origin and HEAD, which agents clone; warns when they would not see what is here. */
async function checkoutSource(path: string, dockerfile: string | undefined, ctx: CliContext): Promise<Source> {
  const source = await readCheckout(path, dockerfile);
  for (const warning of source.warnings) ctx.stderr.write(`warning: ${warning}\n`);
  return { repo: source.repo, commit: source.commit, context: source.context, dockerfile: source.dockerfile };
}

/** `--upload`: the directory as it is (uncommitted files too), uploaded; agents fetch it by digest. */
async function uploadedSource(
  client: FarmClient,
  path: string,
  dockerfile: string | undefined,
  ctx: CliContext,
): Promise<Source> {
  const uploaded = await uploadContext(client, path, dockerfile, (line) => ctx.stderr.write(`${line}\n`));
  return { contextDigest: uploaded.digest, context: '.', dockerfile: uploaded.dockerfile };
}

/** Polls the build until it ends, riding out short outages of the farm. */
export async function follow(client: FarmClient, id: string, onUpdate: (build: BuildView) => void): Promise<BuildView> {
  let unreachableSince: number | null = null;
  for (;;) {
    try {
      const current = await client.getBuild(id);
      unreachableSince = null;
      onUpdate(current);
      if (ENDED.has(current.status)) return current;
    } catch (error) {
      const transient = error instanceof ConnectionError || (error instanceof FarmApiError && error.status >= 500);
      if (!transient) throw error;
      unreachableSince ??= Date.now();
      if (Date.now() - unreachableSince > MAX_UNREACHABLE_MS) {
        throw new ConnectionError(`${error.message}; build ${id} goes on: farm show ${id}`);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

export async function report(build: BuildView, client: FarmClient, ctx: CliContext): Promise<number> {
  const took = build.finishedAt
    ? ` in ${formatDuration(Date.parse(build.finishedAt) - Date.parse(build.createdAt))}`
    : '';
  if (build.status === 'succeeded') {
    ctx.stdout.write(`succeeded${took}\ndigest  ${build.digest ?? '-'}\n`);
    for (const tag of build.tags) ctx.stdout.write(`tag     ${tag}\n`);
    return EXIT.ok;
  }
  for (const p of build.platforms.filter((platform) => platform.status === 'failed')) {
    const on = p.agent ? ` on ${p.agent}${p.emulated ? ' (emulated)' : ''}` : '';
    ctx.stderr.write(`--- ${p.platform} failed${on}: ${p.error ?? 'no reason given'}\n`);
    const log = await client.logText(build.id, p.platform).catch(() => p.logTail ?? '');
    const tail = lastLines(log, LOG_TAIL_LINES);
    ctx.stderr.write(tail.length > 0 ? `${tail.join('\n')}\n` : '(no log)\n');
  }
  ctx.stderr.write(`build ${build.id} ${build.status}${took}${build.error ? `: ${build.error}` : ''}\n`);
  return EXIT.buildFailed;
}

/** `--platform a,b --platform c`, normalized (x86_64 -> amd64, ...); default: this machine's. */
function platforms(values: string[] | undefined): string[] {
  const given = (values ?? []).flatMap((value) => value.split(',')).map((value) => value.trim());
  try {
    if (given.length === 0) return [formatPlatform(platformFromMachine(machine()))];
    return [...new Set(given.filter(Boolean).map((value) => formatPlatform(parsePlatform(value))))];
  } catch (error) {
    throw new UsageError(`--platform: ${(error as Error).message}`);
  }
}

function tags(values: string[] | undefined): string[] {
  const given = (values ?? []).map((value) => value.trim()).filter(Boolean);
  if (given.length === 0) throw new UsageError('give at least one -t TAG, the image reference to publish');
  return given;
}

/**
 * `--secret id=NAME,src=FILE` or `id=NAME,env=VAR` (docker buildx's syntax; `id=NAME` alone reads
 * the variable NAME): the value goes to the farm sealed, and a RUN mounts it with
 * `--mount=type=secret,id=NAME`. Never put secrets in build args, which the image history keeps.
 */
async function secrets(values: string[] | undefined): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  for (const value of values ?? []) {
    const fields = new Map<string, string>();
    for (const part of value.split(',')) {
      const equals = part.indexOf('=');
      if (equals <= 0)
        throw new UsageError(`--secret: "${part}" is not KEY=VALUE (id=NAME,src=FILE or id=NAME,env=VAR)`);
      fields.set(part.slice(0, equals), part.slice(equals + 1));
    }
    const unknown = [...fields.keys()].filter((key) => !['id', 'src', 'source', 'env', 'type'].includes(key));
    if (unknown.length > 0) throw new UsageError(`--secret: unknown key "${unknown[0]}"`);
    const id = fields.get('id');
    if (!id) throw new UsageError(`--secret: "${value}" has no id=NAME`);
    if (id in found) throw new UsageError(`--secret: id "${id}" given twice`);
    const file = fields.get('src') ?? fields.get('source');
    const env = fields.get('env') ?? (file === undefined ? id : undefined);
    if (file !== undefined && fields.has('env')) throw new UsageError(`--secret ${id}: give src= or env=, not both`);
    if (file !== undefined) {
      try {
        found[id] = await readFile(file, 'utf8');
      } catch (error) {
        throw new UsageError(`--secret ${id}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`);
      }
    } else {
      const content = process.env[env as string];
      if (content === undefined) throw new UsageError(`--secret ${id}: the environment variable ${env} is not set`);
      found[id] = content;
    }
  }
  return found;
}

function buildArgs(values: string[] | undefined): Record<string, string> {
  const args: Record<string, string> = {};
  for (const value of values ?? []) {
    const equals = value.indexOf('=');
    if (equals <= 0) throw new UsageError(`--build-arg: "${value}" is not NAME=VALUE`);
    args[value.slice(0, equals)] = value.slice(equals + 1);
  }
  return args;
}
