import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CliEnvironment } from './environment';
import { CliError, UsageError } from './errors';

/** Where the farm is and how to authenticate to it. */
export interface Credentials {
  url: string;
  token: string;
}

/**
 * A farm base URL without trailing slashes.
 *
 * @throws UsageError unless it is an absolute http(s) URL.
 */
export function normalizeFarmUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new UsageError(`"${input}" is not a URL (expected e.g. https://farm.example.com)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`"${input}" is not an http(s) URL`);
  }
  return url.href.replace(/\/+$/, '');
}

/** The saved credentials, or null when there are none (never logged in). */
export async function loadCredentials(file: string): Promise<Partial<Credentials> | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as Partial<Credentials>;
    return {
      url: typeof parsed.url === 'string' ? parsed.url : undefined,
      token: typeof parsed.token === 'string' ? parsed.token : undefined,
    };
  } catch {
    throw new UsageError(`${file} is not valid JSON: run "farm login URL" again`);
  }
}

/**
 * Saves the credentials readable by the owner only (file 0600, a directory we create 0700).
 * Written to a temp file first, so a crash never leaves a half-written or world-readable token.
 */
export async function saveCredentials(env: CliEnvironment, credentials: Credentials): Promise<void> {
  const file = env.credentialsFile;
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // The default directory is ours alone; a directory named by FARM_CONFIG belongs to the user.
  if (env.defaultCredentialsFile) await chmod(dir, 0o700);
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(credentials, null, 2) + '\n', { mode: 0o600 });
  await chmod(temp, 0o600); // the mode above is subject to the umask
  await rename(temp, file);
}

/**
 * The farm to talk to: `FARM_URL` / `FARM_TOKEN` first, then the saved credentials.
 *
 * @throws UsageError when either is missing.
 */
export async function resolveCredentials(env: CliEnvironment): Promise<Credentials> {
  const saved = env.url && env.token ? null : await loadCredentials(env.credentialsFile);
  const url = env.url ?? saved?.url;
  const token = env.token ?? saved?.token;
  if (!url || !token) {
    throw new CliError('not logged in: run "farm login URL" (or set FARM_URL and FARM_TOKEN)');
  }
  return { url: normalizeFarmUrl(url), token };
}
