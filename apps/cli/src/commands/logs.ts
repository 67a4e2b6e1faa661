import { buildIdArgument, type CliContext, farmClient, parseCommand } from '../context';
import { ConnectionError, EXIT, FarmApiError } from '../errors';
import type { FarmClient } from '../farm-client';
import { SseParser, type SseEvent } from '../sse';

/** Times a dropped log stream is resumed (with `Last-Event-ID`) before giving up. */
const MAX_RESUMES = 5;
const RESUME_DELAY_MS = 1000;

/**
 * `farm logs BUILD [--platform P] [-f]`: the log as plain text; with -f it follows the farm's
 * Server-Sent Events (`line`, `status`, `end`) until the build ends, and exits like `farm build`
 * (0 succeeded, 1 failed or canceled). A farm that answers -f with plain text (no live logs
 * yet) gets the text printed as is.
 */
export async function logs(argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand(
    argv,
    { platform: { type: 'string' }, follow: { type: 'boolean', short: 'f' } },
    1,
  );
  const id = buildIdArgument(positionals);
  const client = await farmClient(ctx);
  if (!values.follow) {
    ctx.stdout.write(await client.logText(id, values.platform));
    return EXIT.ok;
  }
  return followLogs(client, id, values.platform, ctx);
}

async function followLogs(client: FarmClient, id: string, platform: string | undefined, ctx: CliContext) {
  // One platform asked for: its lines as they are, like the plain-text log of one platform.
  const prefix = (name: unknown) => (platform ? '' : `[${String(name)}] `);
  let exitCode: number | null = null;
  let lastEventId: string | undefined;
  const parser = new SseParser((event) => {
    lastEventId = event.id ?? lastEventId;
    const data = parseData(event);
    if (event.event === 'line') {
      ctx.stdout.write(`${prefix(data.platform)}${String(data.line ?? '')}\n`);
    } else if (event.event === 'status') {
      const agent = data.agent ? ` on ${String(data.agent)}${data.emulated ? ' (emulated)' : ''}` : '';
      ctx.stderr.write(`[${String(data.platform)}] ${String(data.status)}${agent}\n`);
    } else if (event.event === 'end') {
      ctx.stderr.write(`build ${String(data.status)}${data.digest ? ` ${String(data.digest)}` : ''}\n`);
      exitCode = data.status === 'succeeded' ? EXIT.ok : EXIT.buildFailed;
    }
  });

  for (let attempt = 0; ; attempt++) {
    let broke: string;
    try {
      const response = await client.followLogs(id, platform, lastEventId);
      if (!(response.headers.get('content-type') ?? '').includes('text/event-stream') || !response.body) {
        ctx.stdout.write(await response.text());
        return EXIT.ok;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      try {
        while (exitCode === null) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.push(decoder.decode(value, { stream: true }));
        }
      } finally {
        await reader.cancel().catch(() => undefined);
      }
      if (exitCode !== null) return exitCode;
      broke = 'the stream ended before the build did';
    } catch (error) {
      // A refused request (404, 401, ...) will be refused again; a dropped connection may not.
      if (error instanceof FarmApiError || !(error instanceof Error)) throw error;
      broke = error.message;
    }
    // Without an event id a new stream would repeat every line already printed.
    if (lastEventId === undefined || attempt >= MAX_RESUMES) {
      throw new ConnectionError(`lost the log stream of build ${id}: ${broke}`);
    }
    await new Promise((resolve) => setTimeout(resolve, RESUME_DELAY_MS));
  }
}

function parseData(event: SseEvent): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(event.data);
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
