import type { Readable, Writable } from 'node:stream';
import { Client, type ClientChannel } from 'ssh2';
import { HostKeyError, type HostKeyPolicy } from './host-key';
import type { SshAddress } from './ssh-url';

/**
 * The SSH connection failed or was lost (host down, network cut, keepalive timeout). A plain
 * Error on purpose: the same job may well succeed on a retry, so BullMQ should retry it.
 */
export class SshConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SshConnectionError';
  }
}

/** A remote command ended with a non-zero exit status or was killed by a signal. */
export class RemoteCommandError extends Error {
  constructor(
    message: string,
    /** The exit status, or null when a signal ended the command. */
    readonly exitCode: number | null,
    readonly lastLines: string[],
  ) {
    super(message);
    this.name = 'RemoteCommandError';
  }
}

export interface SshConnectOptions extends SshAddress {
  privateKey: Buffer;
  passphrase?: string;
  hostKey: HostKeyPolicy;
  /** SSH-level keepalive period; the connection is dropped after `keepaliveCountMax` unanswered ones. */
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  /** Handshake and authentication must finish within this. */
  readyTimeoutMs: number;
}

export interface ExecOptions {
  /** How errors name the command, e.g. "buildah bud". */
  name: string;
  /** Sent to the command's stdin, then EOF. Without it the command reads EOF at once. */
  stdin?: Buffer | Readable;
  /** stdout goes here instead of being split into lines. */
  stdout?: Writable;
  /** Every output line (stdout unless `stdout` is given, and stderr), as it arrives. */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
  /**
   * Run when `signal` aborts, before the channel is closed: kills the remote process tree
   * (closing a channel does not reliably end a remote command).
   */
  onAbort?: () => Promise<void>;
}

const KEEP_LAST_LINES = 20;
const ABORT_CLEANUP_TIMEOUT_MS = 10_000;

/** One authenticated SSH connection; runs commands on channels of their own. */
export class SshConnection {
  private lost?: Error;
  private readonly closeListeners = new Set<(reason: Error) => void>();
  private readonly ended: Promise<void>;

  private constructor(
    private readonly client: Client,
    readonly address: SshAddress,
  ) {
    client.on('error', (error) => {
      this.lost ??= error;
    });
    this.ended = new Promise((resolve) => {
      client.on('close', () => {
        const reason = (this.lost ??= new Error('connection closed'));
        for (const listener of this.closeListeners) listener(reason);
        this.closeListeners.clear();
        resolve();
      });
    });
  }

  /**
   * Connects and authenticates with the private key; the host key must satisfy `hostKey`.
   * @throws HostKeyError for a key that is not the pinned one, SshConnectionError otherwise.
   */
  static open(options: SshConnectOptions): Promise<SshConnection> {
    const where = `${options.user}@${options.host}:${options.port}`;
    return new Promise((resolve, reject) => {
      const client = new Client();
      let refused: string | undefined;
      let settled = false;
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        client.end();
        reject(
          refused
            ? new HostKeyError(refused)
            : new SshConnectionError(`cannot connect to ${where}: ${error.message}`, { cause: error }),
        );
      };
      client.once('ready', () => {
        settled = true;
        client.removeListener('error', fail);
        resolve(new SshConnection(client, options));
      });
      client.on('error', fail);
      client.once('close', () => fail(new Error('connection closed during the handshake')));
      client.connect({
        host: options.host,
        port: options.port,
        username: options.user,
        privateKey: options.privateKey,
        passphrase: options.passphrase,
        hostVerifier: (key: Buffer) => {
          refused = options.hostKey.problem(key);
          return refused === undefined;
        },
        algorithms: options.hostKey.algorithms ? { serverHostKey: options.hostKey.algorithms as never } : undefined,
        keepaliveInterval: options.keepaliveIntervalMs,
        keepaliveCountMax: options.keepaliveCountMax,
        readyTimeout: options.readyTimeoutMs,
      });
    });
  }

  /** True once the connection is gone (closed, lost, or keepalive timed out). */
  get closed(): boolean {
    return this.lost !== undefined;
  }

  /** Calls `listener` once when the connection closes, with the reason (at once if it already has). */
  onClose(listener: (reason: Error) => void): void {
    if (this.lost) listener(this.lost);
    else this.closeListeners.add(listener);
  }

  /**
   * Runs `command` (a shell command line: build it with shellCommand) on a new channel.
   * Resolves with the last output lines when it exits with 0.
   *
   * @throws RemoteCommandError for a non-zero exit or a signal, SshConnectionError when the
   * connection is lost before the command ends, and an Error "... canceled" when `signal` aborts.
   */
  exec(command: string, options: ExecOptions): Promise<string[]> {
    const { name, signal } = options;
    const where = `${this.address.host}:${this.address.port}`;
    const canceled = (): Error =>
      signal?.reason instanceof Error && signal.reason.name !== 'AbortError'
        ? signal.reason
        : new Error(`${name} canceled`);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(canceled());
      if (this.lost) {
        return reject(new SshConnectionError(`connection to ${where} lost before ${name}: ${this.lost.message}`));
      }
      this.client.exec(command, (error, channel) => {
        if (error) {
          return reject(
            this.lost
              ? new SshConnectionError(`connection to ${where} lost before ${name}: ${this.lost.message}`)
              : new SshConnectionError(`cannot start ${name} on ${where}: ${error.message}`, { cause: error }),
          );
        }
        this.track(channel, options, where, canceled, resolve, reject);
      });
    });
  }

  private track(
    channel: ClientChannel,
    options: ExecOptions,
    where: string,
    canceled: () => Error,
    resolve: (lines: string[]) => void,
    reject: (error: Error) => void,
  ): void {
    const { name, signal } = options;
    const last: string[] = [];
    let exit: { code: number | null; signal?: string } | undefined;
    let settled = false;
    const settle = (error: Error | undefined): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(last);
    };
    const emit = (line: string): void => {
      last.push(line);
      if (last.length > KEEP_LAST_LINES) last.shift();
      options.onLine?.(line);
    };

    const onAbort = (): void => {
      const cleanup = options.onAbort?.() ?? Promise.resolve();
      const timeout = new Promise((done) => setTimeout(done, ABORT_CLEANUP_TIMEOUT_MS).unref());
      void Promise.race([cleanup.catch(() => undefined), timeout]).then(() => {
        channel.close();
        settle(canceled());
      });
    };
    // The signal may have aborted while the channel was opening.
    if (signal?.aborted) queueMicrotask(onAbort);
    else signal?.addEventListener('abort', onAbort, { once: true });

    const stdoutLines = options.stdout ? undefined : lineSplitter(emit);
    const stderrLines = lineSplitter(emit);
    if (options.stdout) {
      channel.pipe(options.stdout);
    } else {
      channel.setEncoding('utf8');
      channel.on('data', (chunk: string) => stdoutLines?.push(chunk));
    }
    channel.stderr.setEncoding('utf8');
    channel.stderr.on('data', (chunk: string) => stderrLines.push(chunk));
    channel.on('exit', (code: number | null, exitSignal?: string) => {
      exit = { code, signal: exitSignal };
    });
    channel.on('close', () => {
      stdoutLines?.end();
      stderrLines.end();
      if (settled) return;
      if (signal?.aborted) return; // onAbort settles once the remote processes are killed
      if (!exit) {
        const why = this.lost ? `: ${this.lost.message}` : '';
        return settle(new SshConnectionError(`connection to ${where} lost during ${name}${why}`));
      }
      if (exit.code === 0) return settle(undefined);
      const how = exit.code === null ? `was killed by ${exit.signal ?? 'a signal'}` : `exited with code ${exit.code}`;
      const detail = last.length ? `: ${last[last.length - 1]}` : '';
      settle(new RemoteCommandError(`${name} ${how}${detail}`, exit.code, [...last]));
    });

    const stdin = options.stdin;
    if (stdin === undefined) channel.end();
    else if (Buffer.isBuffer(stdin)) channel.end(stdin);
    else {
      stdin.on('error', (error) => {
        channel.close();
        settle(new Error(`${name}: reading its input failed: ${error.message}`));
      });
      stdin.pipe(channel);
    }
  }

  /** Closes the connection; running commands fail with SshConnectionError. */
  close(): Promise<void> {
    this.lost ??= new Error('connection closed by the agent');
    this.client.end();
    return this.ended;
  }
}

/** Splits a text stream into lines (LF, CRLF or a lone CR, as progress output uses). */
function lineSplitter(emit: (line: string) => void): { push(chunk: string): void; end(): void } {
  let pending = '';
  return {
    push(chunk: string) {
      const parts = (pending + chunk).split(/\r?\n|\r/);
      pending = parts.pop() ?? '';
      for (const line of parts) emit(line);
    },
    end() {
      if (pending) emit(pending);
      pending = '';
    },
  };
}
