/**
 * Remote commands travel over SSH as one string that the remote user's login shell parses, so
 * every argument is quoted here: inside single quotes a POSIX shell treats nothing as special
 * except the closing quote, and a `'` in the argument is written as `'\''` (close, escaped
 * quote, reopen). Nothing the job or the operator supplies is ever spliced into shell syntax.
 */

/** One argument, single-quoted for a POSIX shell. */
export function shellQuote(argument: string): string {
  // argv entries are C strings: a NUL would silently cut the argument short.
  if (argument.includes('\0')) throw new Error('a command argument cannot contain a NUL character');
  return `'${argument.replace(/'/g, `'\\''`)}'`;
}

/** A command line for a POSIX shell that runs `argv` exactly: program and arguments, each quoted. */
export function shellCommand(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('a command needs a program');
  return argv.map(shellQuote).join(' ');
}
