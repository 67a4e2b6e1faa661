import { buildIdArgument, type CliContext, farmClient, parseCommand } from '../context';
import { EXIT } from '../errors';
import type { BuildView, FarmClient } from '../farm-client';
import { ProgressView } from '../progress';
import { follow, report } from './build';

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

/**
 * `farm cancel BUILD [--json]`: stops a queued or running build; nothing of it is published.
 * Exit 0 once the farm canceled it, 2 when it cannot be (it ended, or is publishing its index).
 */
export async function cancel(argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand(argv, { json: { type: 'boolean' } }, 1);
  const id = buildIdArgument(positionals);
  const build = await (await farmClient(ctx)).cancelBuild(id);
  if (values.json) ctx.stdout.write(json(build));
  else {
    const stopped = build.platforms.filter((p) => p.status === 'canceled').map((p) => p.platform);
    ctx.stdout.write(`build ${build.id} ${build.status}${stopped.length ? `: ${stopped.join(', ')} stopped` : ''}\n`);
  }
  return EXIT.ok;
}

/**
 * `farm retry BUILD [--no-wait] [--json]`: reruns the platforms of a failed or canceled build
 * that did not succeed (the others keep their images), then publishes the index; followed live
 * like `farm build`. Exit codes as `farm build`: 0 published, 1 failed or canceled.
 */
export async function retry(argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand(argv, { json: { type: 'boolean' }, 'no-wait': { type: 'boolean' } }, 1);
  const id = buildIdArgument(positionals);
  const client = await farmClient(ctx);
  const retried = await client.retryBuild(id);
  if (values['no-wait']) {
    ctx.stdout.write(values.json ? json(retried) : `${retried.id}\n`);
    return EXIT.ok;
  }
  if (values.json) {
    const ended = await follow(client, retried.id, () => undefined);
    ctx.stdout.write(json(ended));
    return ended.status === 'succeeded' ? EXIT.ok : EXIT.buildFailed;
  }
  ctx.stdout.write(`${describeRetry(retried)}\n`);
  return watch(client, retried, ctx);
}

/** `retry 1 of build <id>: rebuilding linux/arm64; reusing linux/amd64`. */
export function describeRetry(build: BuildView): string {
  const rebuilt = build.platforms.filter((p) => p.status !== 'succeeded').map((p) => p.platform);
  const reused = build.platforms.filter((p) => p.status === 'succeeded').map((p) => p.platform);
  const reusing = reused.length > 0 ? `; reusing ${reused.join(', ')}` : '';
  return `retry ${build.retries} of build ${build.id}: rebuilding ${rebuilt.join(', ') || 'nothing'}${reusing}`;
}

/** The live view until the build ends, then the same summary as `farm build`. */
async function watch(client: FarmClient, build: BuildView, ctx: CliContext): Promise<number> {
  const view = new ProgressView(ctx.stdout);
  const interrupted = () => {
    view.release();
    ctx.stderr.write(`\ninterrupted: build ${build.id} goes on (farm show ${build.id})\n`);
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  let ended: BuildView;
  try {
    ended = await follow(client, build.id, (current) => view.update(current));
  } finally {
    view.release();
    process.off('SIGINT', interrupted);
  }
  return report(ended, client, ctx);
}
