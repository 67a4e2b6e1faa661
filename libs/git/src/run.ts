import { spawn } from 'node:child_process';
import { GitError } from './errors';

/**
 * How git reaches remotes. Operator configuration, never user input.
 */
export interface GitTransportOptions {
  /**
   * Also allow the local and unauthenticated transports: `file://` and `git://` (tests, local
   * farms; FARM_ALLOW_FILE_REPOS). Default false: https and ssh only.
   */
  allowFile?: boolean;
  /**
   * The SSH command git runs (`GIT_SSH_COMMAND`, interpreted by a shell, so trusted configuration
   * only), e.g. `ssh -i /etc/farm/deploy_key -o UserKnownHostsFile=/etc/farm/known_hosts`.
   * `-o BatchMode=yes` is always appended so ssh never prompts. Default `ssh`.
   */
  sshCommand?: string;
}

export interface RunGitOptions extends GitTransportOptions {
  cwd: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Every line git writes to stderr (progress included, split on CR and LF). */
  onStderrLine?: (line: string) => void;
}

const STDERR_TAIL_LINES = 15;
const MAX_STDOUT_BYTES = 64 * 1024 * 1024;

/** Runs `git <args>` with the farm's safety settings; resolves with stdout, rejects with GitError. */
export function runGit(args: readonly string[], opts: RunGitOptions): Promise<string> {
  const subcommand = args[0] ?? 'git';
  opts.signal?.throwIfAborted();

  return new Promise((resolve, reject) => {
    // Own process group, so cancel/timeout also ends git's helpers (ssh, git-remote-https).
    const child = spawn('git', [...safetyConfig(opts.allowFile === true), ...args], {
      cwd: opts.cwd,
      env: gitEnv(opts),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });

    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    const tail: string[] = [];
    let partial = '';
    let stopped: Error | undefined;

    const stop = (reason: Error): void => {
      if (stopped) return;
      stopped = reason;
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    };
    const onAbort = (): void => stop(asError(opts.signal?.reason, `git ${subcommand} was canceled`));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(
            () => stop(new GitError(`git ${subcommand} timed out after ${opts.timeoutMs} ms`)),
            opts.timeoutMs,
          );

    const pushLine = (raw: string): void => {
      const line = redact(raw.trimEnd());
      if (line === '') return;
      tail.push(line);
      if (tail.length > STDERR_TAIL_LINES) tail.shift();
      opts.onStderrLine?.(line);
    };

    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > MAX_STDOUT_BYTES) stop(new GitError(`git ${subcommand} printed too much output`));
      else stdout.push(chunk);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      const parts = (partial + chunk).split(/\r\n|\r|\n/);
      partial = parts.pop() ?? '';
      parts.forEach(pushLine);
    });

    const finish = (error: Error | undefined): void => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(Buffer.concat(stdout).toString('utf8'));
    };
    child.on('error', (error) => finish(new GitError(`cannot run git: ${error.message}`)));
    child.on('close', (code) => {
      pushLine(partial);
      if (stopped) return finish(stopped);
      if (code === 0) return finish(undefined);
      const detail = tail.length > 0 ? tail.join('\n') : '(no output)';
      finish(new GitError(`git ${subcommand} failed (exit ${code}): ${detail}`, code));
    });
  });
}

function safetyConfig(allowFile: boolean): string[] {
  const config = [
    'protocol.allow=never',
    'protocol.https.allow=always',
    'protocol.ssh.allow=always',
    ...(allowFile ? ['protocol.git.allow=always', 'protocol.file.allow=always'] : []),
    // Submodules are never fetched or checked out (no project option enables them yet): a
    // submodule URL would be a second, unvalidated remote.
    'submodule.recurse=false',
    'fetch.recurseSubmodules=false',
    // A fetched repository must never run code on the agent.
    'core.hooksPath=/dev/null',
    'core.fsmonitor=false',
    'credential.helper=',
    'advice.detachedHead=false',
  ];
  return config.flatMap((entry) => ['-c', entry]);
}

function gitEnv(opts: GitTransportOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // Inherited GIT_* variables (GIT_DIR, GIT_CONFIG_PARAMETERS, GIT_SSH, GIT_PROXY_COMMAND, ...)
  // could redirect or reconfigure git: start from none of them.
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('GIT_') && key !== 'SSH_ASKPASS') env[key] = value;
  }
  return {
    ...env,
    GIT_ALLOW_PROTOCOL: opts.allowFile ? 'https:ssh:git:file' : 'https:ssh',
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_SSH_COMMAND: `${opts.sshCommand ?? 'ssh'} -o BatchMode=yes`,
    // English messages: error detection below and in callers reads them.
    LC_ALL: 'C',
  };
}

/** Removes `user:password@` from anything URL-like, in case a remote echoes one back. */
function redact(line: string): string {
  return line.replace(/\/\/[^/@\s]*:[^/@\s]*@/g, '//***@');
}

function asError(reason: unknown, fallback: string): Error {
  return reason instanceof Error ? reason : new GitError(fallback);
}
