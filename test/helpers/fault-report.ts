/**
 * The figures every fault scenario prints (issue 5), computed one way for the whole suite
 * (test/faults, test/soak) from what the farm and the registry really hold:
 *
 * - **submitted**: builds the API accepted (202). Pass only those ids.
 * - **succeeded**, **canceled**: builds that ended so; **rebuilt**: of the ended builds, those
 *   with a platform that took more than one attempt (figure only).
 * - **failed**: ended `failed` with a non-empty `error` (a clear reason); **failedWithoutReason**
 *   counts `failed` builds with no error text, and must be 0.
 * - **lost** (must be 0): accepted builds not in a terminal state (succeeded / failed /
 *   canceled) by the deadline, or unknown to the API.
 * - **publishedTwice** (must be 0): tags that ended up with two different publications: a tag
 *   that received manifest PUTs with more than one distinct digest (seen by a RegistryProxy,
 *   when the tags go through one), or a succeeded build whose tag resolves in the registry to a
 *   digest other than the build's recorded index digest. A retried publish that PUTs the same
 *   index again is not a second publication.
 * - **tagProblems** (must be 0): a succeeded build with a tag missing from the registry, or a
 *   failed / canceled build with a tag present (nothing may be published unless every platform
 *   succeeded).
 *
 * Every build must have tags of its own (no tag shared between builds in one report).
 *
 * How a scenario uses it (faults B: PostgreSQL outage, registry faults, git host, likewise):
 *
 *   const proxy = await startRegistryProxy(registry.url);        // optional, for PUT history
 *   const ids = [...];                                             // ids of 202 answers only
 *   ... inject the fault ...
 *   const report = await collectFaultReport({
 *     scenario: 'agent SIGKILL mid-build', farm, buildIds: ids, proxy,
 *     deadlineMs: 120_000, figures: { 'recovery (kill -> restarted), ms': recoveryMs },
 *   });
 *   printFaultReport(report);
 *   expectNothingLost(report);                                    // lost, twice, unexplained, tags
 *   expect(report.succeeded).toBe(ids.length);                     // the scenario's own outcome
 *
 * When the registry itself is faulty (a fault-injecting proxy that answers 500), pass
 * `registryUrl` (the real registry) so the final tag check reads past the fault.
 */
import { isTerminal, parseTagReference } from '@farm/domain';
import type { TestFarm } from './farm';
import type { RegistryProxy } from './registry-proxy';

export interface FaultCounts {
  submitted: number;
  succeeded: number;
  failed: number;
  failedWithoutReason: number;
  canceled: number;
  lost: number;
  publishedTwice: number;
  tagProblems: number;
  /** Ended builds with a platform that took more than one attempt (rebuilt after a fault). */
  rebuilt: number;
}

export interface FaultReport extends FaultCounts {
  scenario: string;
  /** Wall time from the first submission (or the collect call) to the last build's end. */
  durationMs: number;
  /** Scenario-specific figures printed with the counts (recovery times, restarts...). */
  figures: Record<string, number | string>;
  /** One line per lost build, unexplained failure, double publication or tag problem. */
  problems: string[];
  /** The final API view of every build, by id (absent for builds the API does not know). */
  builds: Map<string, any>;
  /** `failed` builds' errors, by id: what "a clear reason" said. */
  failureReasons: Map<string, string>;
}

export interface CollectFaultReportOptions {
  scenario: string;
  farm: Pick<TestFarm, 'request'>;
  /** Ids of builds the API accepted (202). */
  buildIds: string[];
  /** How long from now builds may take to end before they count as lost (default 3 minutes). */
  deadlineMs?: number;
  /** The proxy the builds' tags went through: adds its PUT history to the double-publication check. */
  proxy?: RegistryProxy;
  /** Read tags from this registry instead of each tag's own host (e.g. past a faulty proxy). */
  registryUrl?: string;
  /** When the scenario started, for durationMs (default: now). */
  startedAt?: number;
  /** Printed with the counts; add figures that depend on the builds' end to the report afterwards. */
  figures?: Record<string, number | string>;
}

const POLL_MS = 500;
const INDEX_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** Waits until every build ended or the deadline passed, then counts (see the file's comment). */
export async function collectFaultReport(options: CollectFaultReportOptions): Promise<FaultReport> {
  const { farm, buildIds } = options;
  const startedAt = options.startedAt ?? Date.now();
  const deadline = Date.now() + (options.deadlineMs ?? 180_000);
  const builds = new Map<string, any>();
  let lastEnd = startedAt;

  const pending = new Set(buildIds);
  while (pending.size > 0) {
    for (const id of [...pending]) {
      const response = await farm.request('GET', `/v1/builds/${id}`).catch(() => undefined);
      if (response?.status !== 200) continue;
      builds.set(id, response.body);
      if (isTerminal(response.body.status)) {
        pending.delete(id);
        lastEnd = Math.max(lastEnd, Date.parse(response.body.finishedAt ?? '') || Date.now());
      }
    }
    if (pending.size === 0 || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }

  const report: FaultReport = {
    scenario: options.scenario,
    submitted: buildIds.length,
    succeeded: 0,
    failed: 0,
    failedWithoutReason: 0,
    canceled: 0,
    lost: 0,
    publishedTwice: 0,
    tagProblems: 0,
    rebuilt: 0,
    durationMs: lastEnd - startedAt,
    figures: options.figures ?? {},
    problems: [],
    builds,
    failureReasons: new Map(),
  };

  for (const id of buildIds) {
    const build = builds.get(id);
    if (!build || !isTerminal(build.status)) {
      report.lost++;
      report.problems.push(`lost: ${id} is ${build ? `still ${build.status}` : 'unknown to the API'}`);
      continue;
    }
    if (build.platforms.some((p: any) => p.attempts > 1)) report.rebuilt++;
    if (build.status === 'succeeded') report.succeeded++;
    else if (build.status === 'canceled') report.canceled++;
    else if (typeof build.error === 'string' && build.error.trim() !== '') {
      report.failed++;
      report.failureReasons.set(id, build.error);
    } else {
      report.failedWithoutReason++;
      report.problems.push(`failed without a reason: ${id}`);
    }

    for (const tag of build.tags as string[]) {
      const reference = parseTagReference(tag);
      const key = `${reference.repository}:${reference.tag}`;
      const distinct = [...new Set(options.proxy?.digestsPutUnder(key) ?? [])];
      const current = await tagDigest(options.registryUrl ?? `http://${reference.registry}`, reference);
      if (build.status === 'succeeded') {
        if (current === undefined) {
          report.tagProblems++;
          report.problems.push(`succeeded build ${id} has no ${tag} in the registry`);
        } else if (distinct.length > 1 || current !== build.digest) {
          report.publishedTwice++;
          report.problems.push(
            `published twice: ${tag} of ${id} is ${current}, the build recorded ${build.digest}` +
              (distinct.length > 1 ? `; PUT with ${distinct.join(', ')}` : ''),
          );
        }
      } else if (current !== undefined || distinct.length > 0) {
        report.tagProblems++;
        report.problems.push(`${build.status} build ${id} has ${tag} published (${current ?? distinct.join(', ')})`);
      }
    }
  }
  return report;
}

/** Prints the counts, the figures and the problems in one block. */
export function printFaultReport(report: FaultReport): void {
  const lines = [
    `fault report: ${report.scenario}`,
    `  submitted ${report.submitted}, succeeded ${report.succeeded}, failed with a clear reason ${report.failed}, ` +
      `failed without one ${report.failedWithoutReason}, canceled ${report.canceled}, ` +
      `rebuilt after a fault ${report.rebuilt}`,
    `  lost ${report.lost} (must be 0), published twice ${report.publishedTwice} (must be 0), ` +
      `tag problems ${report.tagProblems} (must be 0)`,
    `  all ended within ${(report.durationMs / 1000).toFixed(1)} s`,
    ...Object.entries(report.figures).map(([name, value]) => `  ${name}: ${value}`),
    ...[...new Set(report.failureReasons.values())].slice(0, 5).map((reason) => `  failure reason: ${reason}`),
    ...report.problems.slice(0, 20).map((problem) => `  PROBLEM ${problem}`),
  ];
  console.log(lines.join('\n'));
}

/** The guarantees every scenario shares: nothing lost, nothing published twice, every failure explained. */
export function expectNothingLost(report: FaultReport): void {
  expect({
    lost: report.lost,
    publishedTwice: report.publishedTwice,
    failedWithoutReason: report.failedWithoutReason,
    tagProblems: report.tagProblems,
    problems: report.problems,
  }).toEqual({ lost: 0, publishedTwice: 0, failedWithoutReason: 0, tagProblems: 0, problems: [] });
}

/** The digest a tag resolves to in the registry, or undefined when it does not exist. */
async function tagDigest(
  registryUrl: string,
  reference: { repository: string; tag: string },
): Promise<string | undefined> {
  const response = await fetch(`${registryUrl}/v2/${reference.repository}/manifests/${reference.tag}`, {
    method: 'HEAD',
    headers: { accept: INDEX_TYPES },
  });
  if (response.status === 404) return undefined;
  if (!response.ok) throw new Error(`HEAD ${reference.repository}:${reference.tag}: ${response.status}`);
  return response.headers.get('docker-content-digest') ?? undefined;
}
