import { machine, hostname } from 'node:os';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { ConfigError, loadAgentConfig } from '@farm/config';
import { formatPlatform, parsePlatform, platformFromMachine } from '@farm/domain';
import { RegistryClient } from '@farm/oci';
import { createRedisConnection } from '@farm/queue';
import { Agent } from './agent';
import { LocalBuildahBuilder } from './builders/local-buildah.builder';
import { AGENT_USAGE, parseAgentArgs } from './cli-args';
import { probePlatform } from './platform-probe';
import { farmVersion } from './version';

const log = (message: string) => console.log(`[agent] ${message}`);

async function main(): Promise<void> {
  const config = loadAgentConfig();
  const args = parseAgentArgs(process.argv.slice(2));
  if (args.ssh) throw new Error('SSH builders (--ssh) are not available in this version yet');

  const native = platformFromMachine(machine());
  const platform = args.platform ? parsePlatform(args.platform) : native;
  const name = formatPlatform(platform);
  const emulated = name !== formatPlatform(native);
  const emulationAllowed =
    args.emulated || config.emulatedPlatforms.some((p) => formatPlatform(parsePlatform(p)) === name);
  if (emulated && !emulationAllowed) {
    // DESIGN.md: emulation is a last resort, never silent, always opt-in.
    throw new Error(
      `this host runs ${formatPlatform(native)}, not ${name}; building ${name} here needs qemu-user emulation: ` +
        `start the agent with --emulated or list ${name} in FARM_EMULATED_PLATFORMS`,
    );
  }
  await probePlatform(platform, native);

  const agentName = args.name ?? `${hostname()}-${name.replace(/\//g, '-')}`;
  const stateDir = join(config.stateDir, 'agents', agentName);
  await mkdir(stateDir, { recursive: true });
  const registry = new RegistryClient({
    dockerConfig: config.registryAuth,
    insecureRegistries: config.insecureRegistries,
  });
  const builder = new LocalBuildahBuilder({
    platform,
    emulated,
    stateDir,
    allowFileRepos: config.allowFileRepos,
    registry,
    insecureRegistries: config.insecureRegistries,
    registryAuth: config.registryAuth,
  });
  const redis = createRedisConnection(config.redisUrl);
  redis.on('error', (error) => log(`redis: ${error.message}`));
  const agent = new Agent({
    name: agentName,
    version: farmVersion(),
    queuePrefix: config.queuePrefix,
    concurrency: config.concurrency,
    labels: args.labels,
    backend: 'local',
    redis,
    builder,
    log,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
  });
  // SIGTERM drains: no new job, running ones finish within the grace period, then exit.
  // A second signal exits at once; BullMQ hands the abandoned jobs to another agent.
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    log(`${signal}: finishing the current job, then exiting`);
    agent
      .shutdown(config.drainGraceMs)
      .then(() => redis.quit())
      .then(() => process.exit(0))
      .catch(() => process.exit(1));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await agent.start();
  const labels = args.labels.length ? ` labels ${args.labels.join(',')}` : '';
  log(`${agentName} serving ${name}${emulated ? ' (emulated with qemu-user)' : ''}${labels}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : `agent: ${(error as Error).message}\n${AGENT_USAGE}`);
  process.exit(1);
});
