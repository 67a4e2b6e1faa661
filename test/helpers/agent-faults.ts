import type { ChildProcess } from 'node:child_process';
import type { TestFarm } from './farm';

/** One agent killed while it held a platform build, and when that build ran again. */
export interface AgentKill {
  victim: string;
  buildId: string;
  platform: string;
  /** The attempt the victim was running. */
  attempt: number;
  killedAt: number;
  /** Kill -> a later attempt started on some agent; undefined if the build ended first. */
  restartedAfterMs?: number;
  restartedOn?: string;
}

/**
 * SIGKILLs the agent running `platform` of a build (its first running platform by default), as
 * a host dying would: no drain, no lock released, its buildah left behind. Waits for the process
 * to be gone. Throws when the build ends first, or when its agent is already dead.
 */
export async function killAgentHolding(farm: TestFarm, buildId: string, platform?: string): Promise<AgentKill> {
  const holding = (p: any) => (platform ? p.platform === platform : true) && p.status === 'running' && p.agent;
  const build = await farm.waitForBuild(buildId, (b) => b.finishedAt !== null || b.platforms.some(holding));
  const held = build.platforms.find(holding);
  if (!held) {
    const platforms = build.platforms.map((p: any) => `${p.platform} ${p.status} attempts ${p.attempts}`).join(', ');
    throw new Error(
      `build ${buildId} ended (${build.status}: ${build.error ?? 'no error'}; ${platforms}) before its agent could be killed`,
    );
  }
  return killAgent(farm, { victim: held.agent, buildId, platform: held.platform, attempt: held.attempts });
}

/**
 * SIGKILLs the named agent, known to be running `attempt` of a build's platform (found some other
 * way than the build's recorded status, e.g. by the registry request it is sending).
 */
export async function killAgent(farm: TestFarm, kill: Omit<AgentKill, 'killedAt'>): Promise<AgentKill> {
  const agent = farm.agent(kill.victim);
  if (agent.exitCode !== null || agent.signalCode !== null) throw new Error(`agent ${kill.victim} is already dead`);
  const killedAt = Date.now();
  await killNow(agent);
  return { ...kill, killedAt };
}

/** Waits until the killed job started again (a later attempt) or its build ended; fills in the figures. */
export async function waitRestarted(farm: TestFarm, kill: AgentKill): Promise<AgentKill> {
  const build = await farm.waitForBuild(kill.buildId, (b) => {
    const p = b.platforms.find((x: any) => x.platform === kill.platform);
    return b.finishedAt !== null || (p.status === 'running' && p.attempts > kill.attempt);
  });
  const p = build.platforms.find((x: any) => x.platform === kill.platform);
  if (p.attempts > kill.attempt) {
    kill.restartedAfterMs = Date.now() - kill.killedAt;
    kill.restartedOn = p.agent;
  }
  return kill;
}

/** SIGKILL, resolved once the process exited. */
export function killNow(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Median and maximum of some durations, for the reports. */
export function spread(valuesMs: number[]): string {
  if (valuesMs.length === 0) return 'none';
  const sorted = [...valuesMs].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  return `median ${median} ms, max ${sorted[sorted.length - 1]} ms (n=${sorted.length})`;
}
