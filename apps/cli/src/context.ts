import { parseArgs, type ParseArgsConfig } from 'node:util';
import { resolveCredentials } from './credentials';
import type { CliEnvironment } from './environment';
import { UsageError } from './errors';
import { FarmClient } from './farm-client';
import type { Terminal } from './progress';

/** What a command works with: its streams, the environment, and the farm on demand. */
export interface CliContext {
  env: CliEnvironment;
  stdout: Terminal;
  stderr: { write(text: string): unknown };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

/** A client for the farm the user logged in to (or FARM_URL / FARM_TOKEN name). */
export async function farmClient(ctx: CliContext): Promise<FarmClient> {
  const { url, token } = await resolveCredentials(ctx.env);
  return new FarmClient(url, token);
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * `parseArgs` in strict mode, at most `maxPositionals` positionals, its errors as UsageErrors.
 */
export function parseCommand<O extends Options>(argv: string[], options: O, maxPositionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (error) {
    // Node's message goes on to explain `--`; its first sentence is the point.
    throw new UsageError((error as Error).message.split('. ')[0]);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument "${parsed.positionals[maxPositionals]}"`);
  }
  return parsed;
}

/** The required BUILD argument of show and logs. */
export function buildIdArgument(positionals: string[]): string {
  const id = positionals[0];
  if (!id) throw new UsageError(`give a build id (see "farm builds")`);
  return id;
}
