import { createInterface } from 'node:readline/promises';
import { Writable } from 'node:stream';
import { type CliContext, parseCommand } from '../context';
import { normalizeFarmUrl, saveCredentials } from '../credentials';
import { CliError, FarmApiError, UsageError } from '../errors';
import { FarmClient } from '../farm-client';

/**
 * `farm login [URL] [--token T]`: checks the token against the farm (GET /v1/builds?limit=1),
 * then saves `{url, token}` readable by the owner only. The token comes from --token,
 * FARM_TOKEN or stdin (typed without echo on a terminal), never from shell history by default.
 */
export async function login(argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand(argv, { token: { type: 'string' } }, 1);
  const given = positionals[0] ?? ctx.env.url;
  if (!given) throw new UsageError('give the farm URL, e.g. farm login https://farm.example.com');
  const url = normalizeFarmUrl(given);
  const token = (values.token ?? ctx.env.token ?? (await readToken(ctx))).trim();
  if (!token) throw new UsageError('the token is empty');

  try {
    await new FarmClient(url, token).listBuilds({ limit: 1 });
  } catch (error) {
    if (error instanceof FarmApiError && error.status === 401) {
      throw new CliError(`the farm at ${url} refused this token`);
    }
    // 403: the farm knows the token, which just lacks builds:read (e.g. a projects:admin token).
    if (!(error instanceof FarmApiError && error.status === 403)) throw error;
  }
  try {
    await saveCredentials(ctx.env, { url, token });
  } catch (error) {
    throw new CliError(`cannot save the credentials in ${ctx.env.credentialsFile}: ${(error as Error).message}`);
  }
  ctx.stdout.write(`logged in to ${url} (token saved in ${ctx.env.credentialsFile})\n`);
  return 0;
}

async function readToken(ctx: CliContext): Promise<string> {
  if (!ctx.stdin.isTTY) {
    let text = '';
    for await (const chunk of ctx.stdin) text += String(chunk);
    return text.split('\n')[0];
  }
  ctx.stderr.write('Token: ');
  // readline echoes what is typed to `output`: a sink keeps the token off the screen.
  const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
  const prompt = createInterface({ input: ctx.stdin, output: sink, terminal: true });
  try {
    return await prompt.question('');
  } finally {
    prompt.close();
    ctx.stderr.write('\n');
  }
}
