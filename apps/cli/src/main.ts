import { runCli } from './cli';
import { readCliEnvironment } from './environment';
import { EXIT } from './errors';

runCli(process.argv.slice(2), {
  env: readCliEnvironment(process.env),
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    // Not a CliError: a bug, so the stack helps more than a tidy message.
    process.stderr.write(
      `farm: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = EXIT.usage;
  },
);
