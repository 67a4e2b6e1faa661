/** Exit codes of the `farm` command. */
export const EXIT = { ok: 0, buildFailed: 1, usage: 2 } as const;

/**
 * An error the CLI reports in one line on stderr and exits 2 for: bad usage, an unreachable
 * farm, a refused request. Anything else escaping a command is a bug and shows its stack.
 */
export class CliError extends Error {
  readonly exitCode: number = EXIT.usage;
}

/** Wrong command line: the message says what is wrong, the usage hint follows. */
export class UsageError extends CliError {}

/** The farm could not be reached, or answered with something that is not its API. */
export class ConnectionError extends CliError {}

/** The farm answered with its documented error body (`{"error":{code,message,field?}}`). */
export class FarmApiError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}
