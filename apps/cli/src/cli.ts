import { agents, builds, show } from './commands/read';
import { build } from './commands/build';
import { cancel, retry } from './commands/control';
import { login } from './commands/login';
import { logs } from './commands/logs';
import { token } from './commands/token';
import type { CliContext } from './context';
import { CliError, EXIT, UsageError } from './errors';

export const USAGE = `usage: farm <command> [flags]

  login [URL] [--token T]            check a token and save it (read from stdin without --token)
  build [PATH] -t TAG... [--platform P[,P...]] [--build-arg K=V]... [--target T]
        [-f DOCKERFILE] [--require LABEL]... [--secret id=ID,src=FILE|env=VAR]...
        [--upload] [--no-cache] [--no-wait] [--json]
                                     build the HEAD commit of the git checkout around PATH
                                     (default .) for each platform (default: this machine's),
                                     follow it live, publish one index under every tag;
                                     --upload builds the directory as it is (uncommitted
                                     work too, minus .dockerignore); --no-cache reuses nothing;
                                     --secret: for RUN --mount=type=secret,id=ID
  logs BUILD [--platform P] [-f]     a build's log; -f follows it live
  builds [--status S] [--limit N] [--json]
                                     recent builds, newest first
  show BUILD [--json]                one build, one row per platform
  agents [--json]                    agents by platform pool
  cancel BUILD [--json]              stop a queued or running build (nothing is published)
  retry BUILD [--no-wait] [--json]   rerun a failed or canceled build's platforms that did
                                     not succeed, follow it live, publish the index
  token create --scope S... [--name N] [--json]
                                     a scoped API token (builds:read, builds:write,
                                     projects:admin, agents:admin, admin); prints its
                                     secret, shown this once only
  token list [--json]                API tokens (never their secrets)
  token revoke ID                    refuse the token from now on

FARM_URL and FARM_TOKEN override the saved login; FARM_CONFIG names the credentials file
(default ~/.config/buildfarm/credentials.json).
Exit codes: 0 succeeded, 1 build failed, 2 usage or connection error.
`;

type Command = (argv: string[], ctx: CliContext) => Promise<number>;

const COMMANDS: Record<string, Command> = { login, build, logs, builds, show, agents, token, cancel, retry };
/** In the CLI's vocabulary but not in the farm's API yet. */
const NOT_YET = new Set<string>([]);

/** Runs one `farm` command line and resolves with its exit code; CLI errors are printed, not thrown. */
export async function runCli(argv: string[], ctx: CliContext): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    ctx.stderr.write(USAGE);
    return EXIT.usage;
  }
  if (['help', '--help', '-h'].includes(name) || rest.includes('--help')) {
    ctx.stdout.write(USAGE);
    return EXIT.ok;
  }
  try {
    if (NOT_YET.has(name)) throw new CliError('not supported by this farm yet');
    if (!Object.hasOwn(COMMANDS, name)) throw new UsageError(`unknown command "${name}"`);
    return await COMMANDS[name](rest, ctx);
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    ctx.stderr.write(`farm ${name}: ${error.message}\n`);
    if (error instanceof UsageError) ctx.stderr.write('run "farm --help" for usage\n');
    return error.exitCode;
  }
}
