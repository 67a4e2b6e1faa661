import { BUILD_STATUSES } from '@farm/domain';
import { buildIdArgument, type CliContext, farmClient, parseCommand } from '../context';
import { EXIT, UsageError } from '../errors';
import type { AgentView, BuildView } from '../farm-client';
import { formatAge, formatSpan, table } from '../format';
import { platformDetail } from '../progress';

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
const arch = (platform: string) => platform.replace(/^linux\//, '');

/** `farm builds [--status S] [--limit N] [--json]`: newest first. */
export async function builds(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseCommand(
    argv,
    { status: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
    0,
  );
  if (values.status !== undefined && !(BUILD_STATUSES as readonly string[]).includes(values.status)) {
    throw new UsageError(`--status: one of ${BUILD_STATUSES.join(', ')}`);
  }
  if (values.limit !== undefined && !/^([1-9]|[1-9][0-9]|100)$/.test(values.limit)) {
    throw new UsageError('--limit: a number from 1 to 100');
  }
  const client = await farmClient(ctx);
  const page = await client.listBuilds({
    status: values.status,
    limit: values.limit ? Number(values.limit) : undefined,
  });
  if (values.json) {
    ctx.stdout.write(json(page));
    return EXIT.ok;
  }
  if (page.builds.length === 0) {
    ctx.stdout.write('no builds\n');
    return EXIT.ok;
  }
  const now = Date.now();
  const rows = page.builds.map((b) => [
    b.id,
    b.status,
    b.platforms.map((p) => `${arch(p.platform)}:${p.status}`).join(' '),
    b.contextDigest ? 'uploaded' : b.commit.slice(0, 12),
    b.tags.length > 1 ? `${b.tags[0]} (+${b.tags.length - 1})` : (b.tags[0] ?? '-'),
    formatAge(b.createdAt, now),
  ]);
  ctx.stdout.write(table(['ID', 'STATUS', 'PLATFORMS', 'COMMIT', 'TAGS', 'CREATED'], rows));
  return EXIT.ok;
}

/** `farm show BUILD [--json]`: the build and one row per platform. */
export async function show(argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand(argv, { json: { type: 'boolean' } }, 1);
  const id = buildIdArgument(positionals);
  const build = await (await farmClient(ctx)).getBuild(id);
  ctx.stdout.write(values.json ? json(build) : describeBuild(build, Date.now()));
  return EXIT.ok;
}

function describeBuild(b: BuildView, now: number): string {
  const fields: [string, string][] = [
    ['id', b.id],
    ['status', b.status],
    ['repo', b.repo || '-'],
    ['ref', b.ref ?? '-'],
    ['commit', b.commit || '-'],
    ['dockerfile', b.dockerfile],
    ['context', b.context],
    // An uploaded context (farm build --upload) is built instead of a commit.
    ...(b.contextDigest ? [['uploaded', b.contextDigest] as [string, string]] : []),
    ['target', b.target ?? '-'],
    ['requires', b.requires.length > 0 ? b.requires.join(', ') : '-'],
    ['digest', b.digest ?? '-'],
    ['tags', b.tags.join('\n' + ' '.repeat(12))],
    ['created', `${b.createdAt} (${formatAge(b.createdAt, now)})`],
    ['duration', formatSpan(b.createdAt, b.finishedAt)],
  ];
  if (b.error) fields.push(['error', b.error]);
  const head = fields.map(([key, value]) => `${key.padEnd(10)}  ${value}\n`).join('');
  const rows = b.platforms.map((p) => [
    p.platform,
    p.status,
    p.agent ?? '-',
    p.emulated ? 'yes' : 'no',
    p.digest ?? '-',
    formatSpan(p.startedAt, p.finishedAt),
    p.status === 'failed' || p.status === 'unschedulable' ? platformDetail(p) : '',
  ]);
  return `${head}\n${table(['PLATFORM', 'STATUS', 'AGENT', 'EMULATED', 'DIGEST', 'DURATION', 'DETAIL'], rows)}`;
}

/** `farm agents [--json]`: agents grouped by the platform pools they serve. */
export async function agents(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseCommand(argv, { json: { type: 'boolean' } }, 0);
  const list = await (await farmClient(ctx)).listAgents();
  if (values.json) {
    ctx.stdout.write(json(list));
    return EXIT.ok;
  }
  if (list.agents.length === 0) {
    ctx.stdout.write('no agents have registered with this farm\n');
    return EXIT.ok;
  }
  const pools = new Map<string, AgentView[]>();
  for (const agent of list.agents) {
    for (const platform of agent.platforms) pools.set(platform, [...(pools.get(platform) ?? []), agent]);
  }
  const now = Date.now();
  const sections = [...pools.keys()].sort().map((platform) => {
    const rows = (pools.get(platform) ?? [])
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((a) => [
        a.name,
        a.status,
        a.emulated ? 'yes' : 'no',
        a.labels.length > 0 ? a.labels.join(',') : '-',
        a.currentJobs.length > 0 ? a.currentJobs.map((j) => `${j.buildId.slice(0, 8)} ${j.platform}`).join(', ') : '-',
        formatAge(a.lastSeenAt, now),
      ]);
    return `${platform}\n${table(['NAME', 'STATUS', 'EMULATED', 'LABELS', 'JOBS', 'LAST SEEN'], rows, '  ')}`;
  });
  ctx.stdout.write(sections.join('\n'));
  return EXIT.ok;
}
