import { homedir } from 'node:os';
import { join } from 'node:path';

/** What the CLI takes from its environment, read once at start (nothing else reads process.env). */
export interface CliEnvironment {
  /** `FARM_URL`: overrides the saved farm URL. */
  url?: string;
  /** `FARM_TOKEN`: overrides the saved token. */
  token?: string;
  /** `FARM_CONFIG`, else `~/.config/buildfarm/credentials.json`. */
  credentialsFile: string;
  /** Whether the credentials file is the default one (then its directory is ours to keep at 0700). */
  defaultCredentialsFile: boolean;
}

export function readCliEnvironment(env: NodeJS.ProcessEnv): CliEnvironment {
  const nonEmpty = (value: string | undefined) => (value && value.trim() !== '' ? value.trim() : undefined);
  const configured = nonEmpty(env.FARM_CONFIG);
  return {
    url: nonEmpty(env.FARM_URL),
    token: nonEmpty(env.FARM_TOKEN),
    credentialsFile: configured ?? join(homedir(), '.config', 'buildfarm', 'credentials.json'),
    defaultCredentialsFile: configured === undefined,
  };
}
