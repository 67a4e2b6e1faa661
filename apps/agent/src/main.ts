import { mkdir, readFile } from 'node:fs/promises';
import { hostname, machine } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadAgentConfig, type AgentConfig } from '@farm/config';
import { buildIdIn, createLogger } from '@farm/logging';
import { formatPlatform, parsePlatform, platformFromMachine } from '@farm/domain';
import { RegistryClient } from '@farm/oci';
import { createRedisConnection } from '@farm/queue';
import { Agent } from './agent';
import type { Builder } from './builders/builder';
import { CachePruningBuilder } from './builders/cache-pruner';
import { LocalBuildahBuilder } from './builders/local-buildah.builder';
import { ResultCachingBuilder } from './builders/result-cache';
import { connectSshBuilder, parseSshUrl } from './builders/ssh';
import { AGENT_USAGE, parseAgentArgs, type AgentArgs } from './cli-args';
import { probePlatform } from './platform-probe';
import { farmVersion } from './version';

const logger = createLogger({ name: 'agent' });
/** The agent's one log function (also handed to its builders); job messages carry their build's id. */
const log = (message: string) => logger.info({ buildId: buildIdIn(message) }, message);

interface Backend {
  name: string;
  builder: Builder;
  /** `local` or the SSH URL. */
  description: string;
  close(): Promise<void>;
}

/** Emulation is a last resort: never silent, always opt-in (DESIGN.md). */
function emulationAllowed(platform: string, args: AgentArgs, config: AgentConfig): boolean {
  return args.emulated || config.emulatedPlatforms.some((p) => formatPlatform(parsePlatform(p)) === platform);
}

/** Builds with this host's buildah, after proving the host runs the platform. */
async function localBackend(args: AgentArgs, config: AgentConfig, registry: RegistryClient): Promise<Backend> {
  const native = platformFromMachine(machine());
  const platform = args.platform ? parsePlatform(args.platform) : native;
  const platformName = formatPlatform(platform);
  const emulated = platformName !== formatPlatform(native);
  if (emulated && !emulationAllowed(platformName, args, config)) {
    throw new Error(
      `this host runs ${formatPlatform(native)}, not ${platformName}; building ${platformName} here needs ` +
        `qemu-user emulation: start the agent with --emulated or list ${platformName} in FARM_EMULATED_PLATFORMS`,
    );
  }
  await probePlatform(platform, native);
  const name = args.name ?? `${hostname()}-${platformName.replace(/\//g, '-')}`;
  const stateDir = join(config.stateDir, 'agents', name);
  await mkdir(stateDir, { recursive: true });
  const builder = new LocalBuildahBuilder({
    platform,
    emulated,
    stateDir,
    allowFileRepos: config.allowFileRepos,
    registry,
    insecureRegistries: config.insecureRegistries,
    registryAuth: config.registryAuth,
    contextRepository: config.contextRepository,
    registryCache: config.registryCache,
  });
  await builder.cleanUpPreviousRun(log);
  return { name, builder, description: 'local', close: async () => undefined };
}

/** Drives a remote builder host over SSH: the platform is the remote host's (uname -m). */
async function sshBackend(url: string, args: AgentArgs, config: AgentConfig, registry: RegistryClient) {
  const keyFile = args.sshKey ?? config.ssh.keyFile;
  if (!keyFile) throw new Error('--ssh needs a private key: --ssh-key FILE (or FARM_SSH_KEY_FILE)');
  const knownHostsFile = args.sshKnownHosts ?? config.ssh.knownHostsFile;
  const hostKey = args.sshHostKey ?? config.ssh.hostKey;
  if (!knownHostsFile && !hostKey) {
    throw new Error('--ssh needs the host key pinned: --ssh-known-hosts FILE or --ssh-host-key SHA256:...');
  }
  const { host } = parseSshUrl(url);
  // Fixed before connecting: it names this agent's state on the remote host.
  const name = args.name ?? `${hostname()}-ssh-${host.replace(/[^A-Za-z0-9.-]/g, '-')}`;
  const stateDir = join(config.stateDir, 'agents', name);
  await mkdir(stateDir, { recursive: true });
  const platform = args.platform ? formatPlatform(parsePlatform(args.platform)) : undefined;
  const builder = await connectSshBuilder(
    {
      url,
      privateKey: await readFile(keyFile),
      knownHostsLine: knownHostsFile ? await readFile(knownHostsFile, 'utf8') : undefined,
      hostKeyFingerprint: hostKey,
    },
    {
      name,
      platform,
      emulated: platform ? emulationAllowed(platform, args, config) : false,
      allowFileRepos: config.allowFileRepos,
      registry,
      insecureRegistries: config.insecureRegistries,
      registryAuth: config.registryAuth,
      contextRepository: config.contextRepository,
      registryCache: config.registryCache,
      remoteStateDir: config.ssh.remoteStateDir,
      localWorkDir: join(stateDir, 'ssh'),
      gitMirrorDir: join(stateDir, 'git'),
      log,
    },
  );
  return { name, builder, description: url, close: () => builder.close() };
}

async function main(): Promise<void> {
  const config = loadAgentConfig();
  logger.level = config.logLevel;
  const args = parseAgentArgs(process.argv.slice(2));
  const registry = new RegistryClient({
    dockerConfig: config.registryAuth,
    insecureRegistries: config.insecureRegistries,
  });
  const backend = args.ssh
    ? await sshBackend(args.ssh, args, config, registry)
    : await localBackend(args, config, registry);

  const redis = createRedisConnection(config.redisUrl);
  redis.on('error', (error) => log(`redis: ${error.message}`));
  const stateDir = join(config.stateDir, 'agents', backend.name);
  // A job built before with the same inputs is answered from the agent's result cache.
  const resultCaching = new ResultCachingBuilder(backend.builder, join(stateDir, 'results'), registry, log);
  const agent = new Agent({
    name: backend.name,
    version: farmVersion(),
    queuePrefix: config.queuePrefix,
    concurrency: config.concurrency,
    labels: args.labels,
    backend: backend.description,
    redis,
    // After a job, caches go when the state dir's disk is too full (the SSH builder's storage is
    // on its host, out of reach: only the result records here are pruned for it).
    builder: new CachePruningBuilder(resultCaching, { dir: stateDir, ...config.cachePrune, log }),
    log,
    secretsKey: config.secretsKey,
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
      .then(() => backend.close())
      .then(() => redis.quit())
      .then(() => process.exit(0))
      .catch(() => process.exit(1));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await agent.start();
  const platform = formatPlatform(backend.builder.platform);
  const emulated = backend.builder.emulated ? ' (emulated with qemu-user)' : '';
  const labels = args.labels.length ? ` labels ${args.labels.join(',')}` : '';
  const via = args.ssh ? ` via ${backend.description}` : '';
  const cache = config.registryCache
    ? ` with the registry layer cache ${config.registryCache.registry}/${config.registryCache.repository}`
    : '';
  log(`${backend.name} serving ${platform}${emulated}${labels}${via}${cache}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : `agent: ${(error as Error).message}\n${AGENT_USAGE}`);
  process.exit(1);
});
