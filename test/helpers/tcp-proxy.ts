import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on a loopback port in front of one `host:port`, for fault tests: the test points a
 * client (PostgreSQL's DATABASE_URL, a git:// URL) at the proxy, then cuts the path and restores
 * it, and counts the connections that were tried.
 *
 *   const proxy = await startTcpProxy({ host: '127.0.0.1', port: 5432 });
 *   await proxy.cut('refuse');   // live connections drop, new ones are refused
 *   await proxy.restore();
 *   await proxy.stop();
 */
export interface TcpProxy {
  /** The proxy's own port on 127.0.0.1. */
  port: number;
  /** Connections clients opened (or tried to, while cut with `reset`) since the start. */
  readonly accepted: number;
  /** Connections currently forwarded. */
  readonly open: number;
  /** Whether the path is cut. */
  readonly isCut: boolean;
  /**
   * Drops every live connection and keeps the path down until restore():
   * - `refuse`: stops listening, so new connections are refused (ECONNREFUSED, a host that is down);
   * - `reset`: keeps listening but closes each new connection at once (a crashing server),
   *   which lets `accepted` count the attempts.
   */
  cut(mode?: 'refuse' | 'reset'): Promise<void>;
  /** Forwards new connections again, on the same port. */
  restore(): Promise<void>;
  /** Closes the listener and every connection. Idempotent. */
  stop(): Promise<void>;
}

export interface TcpProxyTarget {
  host: string;
  port: number;
  /** Our port; default: any free one. */
  listenPort?: number;
}

export async function startTcpProxy(target: TcpProxyTarget): Promise<TcpProxy> {
  const live = new Set<Socket>();
  let accepted = 0;
  let mode: 'forward' | 'refuse' | 'reset' = 'forward';
  let server: Server | undefined;
  let stopped = false;

  const onConnection = (client: Socket): void => {
    accepted++;
    if (mode !== 'forward') {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: target.host, port: target.port });
    live.add(client);
    live.add(upstream);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const listen = async (port: number): Promise<number> => {
    const next = createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => {
        next.off('error', reject);
        resolve();
      });
    });
    server = next;
    return (next.address() as { port: number }).port;
  };

  const closeListener = async (): Promise<void> => {
    const current = server;
    server = undefined;
    if (current) await new Promise<void>((resolve) => current.close(() => resolve()));
  };

  const dropLive = (): void => {
    for (const socket of live) socket.destroy();
    live.clear();
  };

  const port = await listen(target.listenPort ?? 0);

  return {
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return live.size / 2;
    },
    get isCut() {
      return mode !== 'forward';
    },
    async cut(how = 'refuse') {
      mode = how;
      dropLive();
      if (how === 'refuse') await closeListener();
    },
    async restore() {
      if (stopped) return;
      mode = 'forward';
      // Re-bound on the same port: the clients keep their configured address. Another process
      // may take the port meanwhile; retry briefly, then tell.
      for (let attempt = 1; !server; attempt++) {
        try {
          await listen(port);
        } catch (error) {
          if (attempt >= 50) throw new Error(`tcp proxy: cannot listen on ${port} again: ${(error as Error).message}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      mode = 'reset';
      dropLive();
      await closeListener();
    },
  };
}
