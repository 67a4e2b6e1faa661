import { spawn } from 'node:child_process';

export class ProcessError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly lastLines: string[],
  ) {
    super(message);
    this.name = 'ProcessError';
  }
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal?: AbortSignal;
  /** Every output line (stdout and stderr interleaved as they arrive). */
  onLine?: (line: string) => void;
  /** How errors name the process, e.g. "buildah bud" (default: the command). */
  name?: string;
}

const KEEP_LAST_LINES = 20;

/**
 * Runs a program with an argument array (never a shell), streaming its output line by line.
 * Aborting the signal kills the whole process group, so a build's children die with it.
 */
export function runProcess(command: string, args: string[], options: RunOptions = {}): Promise<string[]> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return reject(new ProcessError(`${options.name ?? command} canceled`, null, []));
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const name = options.name ?? command;
    const last: string[] = [];
    const emit = (line: string) => {
      last.push(line);
      if (last.length > KEEP_LAST_LINES) last.shift();
      options.onLine?.(line);
    };
    for (const stream of [child.stdout, child.stderr]) {
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const parts = (pending + chunk).split(/\r?\n|\r/);
        pending = parts.pop() ?? '';
        parts.forEach(emit);
      });
      stream.on('end', () => {
        if (pending) emit(pending);
        pending = '';
      });
    }
    const kill = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    options.signal?.addEventListener('abort', kill, { once: true });
    child.on('error', (error) => {
      options.signal?.removeEventListener('abort', kill);
      reject(new ProcessError(`cannot run ${name}: ${error.message}`, null, last));
    });
    child.on('close', (code, signal) => {
      options.signal?.removeEventListener('abort', kill);
      if (options.signal?.aborted) return reject(new ProcessError(`${name} canceled`, code, last));
      if (code === 0) return resolve(last);
      const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const detail = last.length ? `: ${last[last.length - 1]}` : '';
      reject(new ProcessError(`${name} ${why}${detail}`, code, last));
    });
  });
}
