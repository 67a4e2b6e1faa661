import { hostname, userInfo } from 'node:os';
import { isScope, SCOPES } from '@farm/domain';
import { type CliContext, farmClient, parseCommand } from '../context';
import { EXIT, UsageError } from '../errors';
import { formatAge, table } from '../format';

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

const SUBCOMMANDS: Record<string, (argv: string[], ctx: CliContext) => Promise<number>> = {
  create,
  list,
  revoke,
};

/** `farm token create|list|revoke`: scoped API tokens (the farm wants the admin scope for these). */
export async function token(argv: string[], ctx: CliContext): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) throw new UsageError('give a subcommand: create, list or revoke');
  if (!Object.hasOwn(SUBCOMMANDS, name)) throw new UsageError(`unknown subcommand "token ${name}"`);
  return SUBCOMMANDS[name](rest, ctx);
}

/**
 * `farm token create --scope S... [--name N] [--json]`: prints the new secret alone on stdout
 * (so `TOKEN=$(farm token create ...)` works) and what it is on stderr. The farm shows the
 * secret this once only.
 */
async function create(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseCommand(
    argv,
    { scope: { type: 'string', multiple: true }, name: { type: 'string' }, json: { type: 'boolean' } },
    0,
  );
  // Repeatable, and comma-separated lists are fine too: --scope builds:read,builds:write
  const scopes = [...new Set((values.scope ?? []).flatMap((scope) => scope.split(',')).map((s) => s.trim()))];
  if (scopes.length === 0) throw new UsageError(`give at least one --scope (${SCOPES.join(', ')})`);
  const unknown = scopes.find((scope) => !isScope(scope));
  if (unknown !== undefined) throw new UsageError(`unknown scope "${unknown}": one of ${SCOPES.join(', ')}`);
  const name = values.name ?? defaultName();
  if (name.length < 1 || name.length > 100) throw new UsageError('--name: 1 to 100 characters');

  const created = await (await farmClient(ctx)).createToken({ name, scopes });
  if (values.json) {
    ctx.stdout.write(json(created));
    return EXIT.ok;
  }
  ctx.stdout.write(`${created.secret}\n`);
  ctx.stderr.write(
    `created token "${created.name}" (id ${created.id}, scopes ${created.scopes.join(', ')}).\n` +
      'The secret above is shown this once only: store it now (e.g. farm login URL --token ...).\n',
  );
  return EXIT.ok;
}

/** Who asked for the token, as its name when none is given: "alice@laptop". */
function defaultName(): string {
  let user = 'farm';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (some containers): keep the generic name
  }
  return `${user}@${hostname()}`.slice(0, 100);
}

/** `farm token list [--json]`: every token, revoked ones included; never a secret. */
async function list(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseCommand(argv, { json: { type: 'boolean' } }, 0);
  const { tokens } = await (await farmClient(ctx)).listTokens();
  if (values.json) {
    ctx.stdout.write(json({ tokens }));
    return EXIT.ok;
  }
  if (tokens.length === 0) {
    ctx.stdout.write('no tokens (the bootstrap admin token is not listed)\n');
    return EXIT.ok;
  }
  const now = Date.now();
  const rows = tokens.map((t) => [
    t.id,
    t.name,
    `${t.prefix}...`,
    t.scopes.join(','),
    t.revokedAt ? `revoked ${formatAge(t.revokedAt, now)}` : 'active',
    formatAge(t.createdAt, now),
    formatAge(t.lastUsedAt, now),
  ]);
  ctx.stdout.write(table(['ID', 'NAME', 'PREFIX', 'SCOPES', 'STATUS', 'CREATED', 'LAST USED'], rows));
  return EXIT.ok;
}

/** `farm token revoke ID`: requests with the token are refused from now on. */
async function revoke(argv: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parseCommand(argv, {}, 1);
  const id = positionals[0];
  if (!id) throw new UsageError('give a token id (see "farm token list")');
  await (await farmClient(ctx)).revokeToken(id);
  ctx.stdout.write(`revoked token ${id}\n`);
  return EXIT.ok;
}
