import type { AgentSteps } from './agent-profile';
import type { HandRun, HandStorage } from './by-hand';
import type { FarmRun } from './farm-run';
import type { MachineInfo } from './machine';
import { median, ms, percentile, summarize, type Summary } from './stats';

/** What each measured build does: see SCENARIO_TEXT. */
export const SCENARIOS = ['cold', 'same-commit', 'one-file'] as const;
export type Scenario = (typeof SCENARIOS)[number];

const SCENARIO_TEXT: Record<Scenario, string> = {
  cold: 'cold: a new commit with a RUN line never built before (every step runs) and a new copied file',
  'same-commit': 'same-commit: the commit the cold build just built, built again under a new tag',
  'one-file': 'one-file: a new commit changing only the file the last step (COPY) copies',
};

/** The farm's and the by-hand builds of one scenario, alternating. */
export interface ScenarioRuns {
  scenario: Scenario;
  farm: FarmRun[];
  hand: HandRun[];
}

/** Targets of the issue, as ratios to the cold by-hand median or in milliseconds. */
export const TARGETS = {
  coldRatio: 1.1,
  sameCommitRatio: 0.35,
  oneFileRatio: 0.5,
  schedulingP50: 50,
  schedulingP99: 200,
  publishP50: 20,
  agentIdleRssMiB: 100,
};

/** One line of the figures table: a value against its target. */
export interface Figure {
  name: string;
  value: string;
  target: string;
  /** null: a figure without a target. */
  pass: boolean | null;
  note?: string;
}

/** Everything one bench invocation measured. */
export interface BenchResults {
  command: string;
  startedAt: Date;
  machine: MachineInfo;
  platforms: string[];
  nativePlatform: string;
  target: number;
  handStorage: HandStorage;
  farmWarmup: FarmRun;
  handWarmup: HandRun;
  farm: FarmRun[];
  hand: HandRun[];
  /** Per build, the steps of each platform in `platforms` order; empty when skipped. */
  profile: AgentSteps[][];
  /** 1-minute load average when the bench started and ended: other work on the host skews timings. */
  load: { start: number; end: number };
  scenarios: ScenarioRuns[];
  /** RSS of each agent process (platform order) in MiB: before any build, peak while building, at the end. */
  agentRss: { idle: number[]; building: number[]; after: number[] };
}

/** Builder-independent time of a farm build: end to end minus the slowest platform's own build. */
export function schedulingOverhead(run: FarmRun): number {
  const b = breakdown(run);
  return run.totalMs - b.slowestPlatform;
}

/** Every figure of the multi-arch bench against its target. */
export function figures(results: BenchResults): Figure[] {
  const med = (values: number[]) => median(values);
  const runsOf = (scenario: Scenario) => results.scenarios.find((s) => s.scenario === scenario)!;
  const handCold = med(runsOf('cold').hand.map((r) => r.totalMs));
  const out: Figure[] = [];
  const ratioFigure = (scenario: Scenario, target: number, label: string) => {
    const runs = runsOf(scenario);
    const farm = med(runs.farm.map((r) => r.totalMs));
    const hand = med(runs.hand.map((r) => r.totalMs));
    const ratio = farm / handCold;
    out.push({
      name: `${label}: farm median / cold by-hand median`,
      value: `${ratio.toFixed(2)} (farm ${ms(farm)} ms; by hand same scenario ${ms(hand)} ms = ${(farm / hand).toFixed(2)}x)`,
      target: `<= ${target.toFixed(2)}`,
      pass: ratio <= target,
    });
  };
  ratioFigure('cold', TARGETS.coldRatio, '1. cold two-platform build');
  ratioFigure('same-commit', TARGETS.sameCommitRatio, '2. rebuild of the same commit');
  ratioFigure('one-file', TARGETS.oneFileRatio, '3. rebuild after a one-file change');
  const allFarm = results.scenarios.flatMap((s) => s.farm);
  const overhead = allFarm.map(schedulingOverhead);
  out.push({
    name: `4. scheduling overhead p50 (end to end minus the slowest platform's own build; ${overhead.length} builds)`,
    value: `${ms(percentile(overhead, 50))} ms`,
    target: `<= ${TARGETS.schedulingP50} ms`,
    pass: percentile(overhead, 50) <= TARGETS.schedulingP50,
  });
  out.push({
    name: '4. scheduling overhead p99',
    value: `${ms(percentile(overhead, 99))} ms`,
    target: `<= ${TARGETS.schedulingP99} ms`,
    pass: percentile(overhead, 99) <= TARGETS.schedulingP99,
    note: overhead.length < 100 ? `nearest rank of ${overhead.length} samples: the maximum` : undefined,
  });
  const publish = allFarm.map((r) => breakdown(r).publish);
  const handMerge = results.scenarios.flatMap((s) => s.hand).map((r) => r.steps.merge);
  out.push({
    name: '5. publish: last platform done -> index pushed under every tag, p50',
    value: `${ms(percentile(publish, 50))} ms (p99 ${ms(percentile(publish, 99))} ms; by hand \`buildah manifest create/add/push\` ${ms(med(handMerge))} ms)`,
    target: `<= ${TARGETS.publishP50} ms`,
    pass: percentile(publish, 50) <= TARGETS.publishP50,
  });
  const idle = Math.max(...results.agentRss.idle);
  out.push({
    name: '7. agent RSS idle (largest agent)',
    value: `${idle.toFixed(0)} MiB (during builds: peak ${Math.max(...results.agentRss.building).toFixed(0)} MiB; after: ${Math.max(...results.agentRss.after).toFixed(0)} MiB)`,
    target: `<= ${TARGETS.agentIdleRssMiB} MiB`,
    pass: idle <= TARGETS.agentIdleRssMiB,
  });
  return out;
}

export function figuresTable(list: Figure[]): string[] {
  return [
    ...header(['figure', 'measured', 'target', 'verdict']),
    ...list.map((f) =>
      row([
        f.name,
        f.note ? `${f.value} (${f.note})` : f.value,
        f.target,
        f.pass === null ? '-' : f.pass ? 'PASS' : '**MISS**',
      ]),
    ),
  ];
}

function scenariosSection(results: BenchResults): string[] {
  const lines = [
    '## Every scenario (ms, alternating farm / by hand)',
    '',
    ...SCENARIOS.map((s) => `- ${SCENARIO_TEXT[s]}`),
    '- by hand: a fresh `git clone` for cold builds, `git fetch` + `git checkout` in the same working copy for',
    '  rebuilds; `buildah bud --layers` (the same layer cache the agents use, for fairness) for every build',
    '',
    ...header([
      'scenario',
      'farm median',
      'farm p90',
      'by hand median',
      'farm / by hand',
      'farm / cold by hand',
      'runs',
    ]),
  ];
  const handCold = median(results.scenarios[0].hand.map((r) => r.totalMs));
  for (const { scenario, farm, hand } of results.scenarios) {
    const f = summarize(farm.map((r) => r.totalMs));
    const h = summarize(hand.map((r) => r.totalMs));
    lines.push(
      row([
        scenario,
        ms(f.median),
        ms(f.p90),
        ms(h.median),
        (f.median / h.median).toFixed(2),
        (f.median / handCold).toFixed(2),
        f.n,
      ]),
    );
  }
  lines.push('', '### Farm breakdown per scenario (ms, medians)', '');
  const keys: (keyof FarmBreakdown)[] = ['submit', 'queueWait', 'slowestPlatform', 'platformSkew', 'publish', 'notify'];
  lines.push(
    ...header([
      'scenario',
      'submit',
      'queue wait',
      'slowest platform',
      'platform skew',
      'publish',
      'client notified',
      'overhead',
    ]),
  );
  for (const { scenario, farm } of results.scenarios) {
    const parts = farm.map(breakdown);
    lines.push(
      row([scenario, ...keys.map((k) => ms(median(parts.map((p) => p[k])))), ms(median(farm.map(schedulingOverhead)))]),
    );
  }
  lines.push('', '### By-hand steps per scenario (ms, medians)', '');
  lines.push(
    ...header(['scenario', 'clone / fetch', 'bud (both)', 'push (both)', 'manifest create/add/push', 'total']),
  );
  for (const { scenario, hand } of results.scenarios) {
    const step = (k: keyof HandRun['steps']) => ms(median(hand.map((r) => r.steps[k])));
    lines.push(
      row([scenario, step('clone'), step('bud'), step('push'), step('merge'), ms(median(hand.map((r) => r.totalMs)))]),
    );
  }
  lines.push('');
  return lines;
}

/** Where a farm build's time went, from the farm's own timestamps (plus the client's clock). */
export interface FarmBreakdown {
  /** Client POST -> build row created (validation, INSERT). */
  submit: number;
  /** Build created -> first platform started on an agent. */
  queueWait: number;
  /** The slowest platform's startedAt -> finishedAt (clone, build, push on its agent). */
  slowestPlatform: number;
  /** First platform started -> last platform finished, beyond the slowest platform's own time. */
  platformSkew: number;
  /** Last platform finished -> build finished (job completion, index assembled and pushed, rows updated). */
  publish: number;
  /** Build finished -> the client knew (completion event + one GET). */
  notify: number;
}

export function breakdown(run: FarmRun): FarmBreakdown {
  const { build } = run;
  const time = (iso: string | null) => {
    if (!iso) throw new Error(`build ${build.id} lacks a timestamp: ${JSON.stringify(build)}`);
    return Date.parse(iso);
  };
  const starts = build.platforms.map((p) => time(p.startedAt));
  const ends = build.platforms.map((p) => time(p.finishedAt));
  const slowest = Math.max(...build.platforms.map((p) => time(p.finishedAt) - time(p.startedAt)));
  const created = time(build.createdAt);
  return {
    submit: created - run.submittedAt,
    queueWait: Math.min(...starts) - created,
    slowestPlatform: slowest,
    platformSkew: Math.max(...ends) - Math.min(...starts) - slowest,
    publish: time(build.finishedAt) - Math.max(...ends),
    notify: run.doneAt - time(build.finishedAt),
  };
}

const row = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
/** A table header; the first `textColumns` columns are text (left-aligned), the rest numbers. */
const header = (cells: string[], textColumns = 1) => [
  row(cells),
  row(cells.map((_c, i) => (i < textColumns ? '---' : '---:'))),
];
const summaryRow = (name: string, s: Summary) => row([name, ms(s.median), ms(s.p90), ms(s.max), ms(s.min), s.n]);

/** The report, as markdown (which also reads well in a terminal). */
export function renderReport(results: BenchResults): string {
  const farm = summarize(results.farm.map((r) => r.totalMs));
  const hand = summarize(results.hand.map((r) => r.totalMs));
  const ratio = farm.median / hand.median;
  const verdict = ratio <= results.target ? 'PASS' : 'MISS';
  const { machine } = results;
  const emulated = results.platforms.filter((p) => p !== results.nativePlatform);
  const lines: string[] = [
    '# Multi-arch builds: farm vs by hand (cold, same commit, one-file change)',
    '',
    `- command: \`${results.command}\``,
    `- date: ${results.startedAt.toISOString()}`,
    `- machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB memory, kernel ${machine.kernel}`,
    `- tools: ${machine.buildah}, node ${machine.node}`,
    `- load average (1 min): ${results.load.start.toFixed(2)} at the start, ${results.load.end.toFixed(2)} at the end`,
    `- build: ${results.platforms.join(' + ')} (${results.nativePlatform} native` +
      `${emulated.length ? `, ${emulated.join(', ')} under qemu-user emulation` : ''}); busybox base, ` +
      'Dockerfile with one RUN (`uname -m > /arch`) and one COPY; the cold build is a new commit with a new RUN ' +
      'line and a new copied file, so no cache applies; both sides keep their overlay storage, use `--layers` and ' +
      '`--isolation chroot` and the same local registry',
    '',
    '## Result',
    '',
    ...header(['wall time (ms)', 'median', 'p90', 'max', 'min', 'runs']),
    summaryRow('farm', farm),
    summaryRow('by hand', hand),
    '',
    `**farm / by hand (medians): ${ratio.toFixed(2)}** (target <= ${results.target.toFixed(2)}): **${verdict}**`,
    '',
    '## Every figure of this bench against its target',
    '',
    ...figuresTable(figures(results)),
    '',
    ...(results.farm.length < 5 ? ['**Fewer than 5 runs per figure: a smoke run, not a measurement.**', ''] : []),
    ...scenariosSection(results),
    '## Cold runs (ms, alternating farm / by hand, each on a new commit)',
    '',
    ...header(['run', 'farm', 'by hand', 'farm / by hand']),
    row(['warm-up', ms(results.farmWarmup.totalMs), ms(results.handWarmup.totalMs), '(not counted)']),
    ...results.farm.map((run, i) => {
      const handMs = results.hand[i]?.totalMs;
      return row([
        i + 1,
        ms(run.totalMs),
        handMs === undefined ? '' : ms(handMs),
        handMs ? (run.totalMs / handMs).toFixed(2) : '',
      ]);
    }),
    '',
    ...farmBreakdownSection(results.farm),
    ...handStepsSection(results.hand),
    ...profileSection(results),
    '## How each side works',
    '',
    '- **farm**: `POST /v1/builds` (repo, exact commit, both platforms, one tag) to the api; the coordinator, one',
    '  native agent and one emulated agent run as separate processes with their own queue prefix and database;',
    "  the client learns the build ended from the publish job's completion event (BullMQ queue events) and",
    '  reads it with one `GET /v1/builds/{id}`; the tag is then checked to resolve to the new index digest.',
    '- **by hand**: `git clone` + `git checkout <commit>` into a fresh dir; `buildah bud --isolation chroot',
    '  --platform P` for both platforms in parallel; both images pushed in parallel (buildah 1.28 cannot push',
    '  a compressed image to a digest it does not know yet, so each goes to a scratch tag and `--digestfile`',
    '  gives the digest); `buildah manifest create`, `manifest add` of both digests, `manifest push --all`',
    "  under the tag, whose digest is checked like the farm's.",
    results.handStorage === 'per-platform'
      ? '  Each platform has its own storage, as each agent does (`--hand-storage shared` uses one for both).'
      : '  One storage serves both platforms (`--hand-storage shared`), so the base tag flips between architectures.',
    '',
  ];
  return lines.join('\n');
}

function farmBreakdownSection(runs: FarmRun[]): string[] {
  const parts = runs.map(breakdown);
  const keys: (keyof FarmBreakdown)[] = ['submit', 'queueWait', 'slowestPlatform', 'platformSkew', 'publish', 'notify'];
  const names = ['submit', 'queue wait', 'slowest platform', 'platform skew', 'publish', 'client notified'];
  const paths = runs.map(criticalPath);
  const medianOf = (values: (number | undefined)[]) => {
    const known = values.filter((v): v is number => v !== undefined);
    return known.length ? ms(median(known)) : '?';
  };
  return [
    '## Farm breakdown (ms, from `GET /v1/builds/{id}` timestamps)',
    '',
    'submit = POST -> createdAt; queue wait = createdAt -> first platform startedAt; slowest platform =',
    'its startedAt -> finishedAt on the agent; platform skew = the rest of first start -> last finish;',
    'publish = last platform finishedAt -> build finishedAt; client notified = finishedAt -> client knew.',
    '',
    ...header(['run', ...names, 'total']),
    ...parts.map((p, i) => row([i + 1, ...keys.map((k) => ms(p[k])), ms(runs[i].totalMs)])),
    row(['**median**', ...keys.map((k) => ms(median(parts.map((p) => p[k])))), ms(median(runs.map((r) => r.totalMs)))]),
    '',
    '### Critical path in detail (ms, medians)',
    '',
    "Along the platform that finished last, adding BullMQ's own event times (Redis stream ids) to the",
    "build's timestamps; every clock is this host's.",
    '',
    ...header(['stage', 'from -> to', 'median'], 2),
    ...CRITICAL_STAGES.map(([key, name, span]) => row([name, span, medianOf(paths.map((p) => p[key]))])),
    row(['**total**', 'POST -> client knew', ms(median(runs.map((r) => r.totalMs)))]),
    '',
  ];
}

interface CriticalPath {
  submit: number;
  enqueue?: number;
  pickup?: number;
  agentStart?: number;
  build: number;
  wrapUp?: number;
  handoff?: number;
  coordinator?: number;
  notify: number;
}

const CRITICAL_STAGES: [keyof CriticalPath, string, string][] = [
  ['submit', 'api: validate, store', 'POST -> createdAt'],
  ['enqueue', 'api: add the flow', 'createdAt -> platform job waiting'],
  ['pickup', 'queue: agent takes the job', 'waiting -> active'],
  ['agentStart', 'agent: parse job, started event', 'active -> platform startedAt'],
  ['build', 'agent: clone, bud, upload by digest', 'platform startedAt -> finishedAt'],
  ['wrapUp', 'agent: logs, ended event, cleanup, job done', 'platform finishedAt -> job completed'],
  ['handoff', 'queue: parent released, coordinator takes it', 'job completed -> publish active'],
  ['coordinator', 'coordinator: record, push index + tag, finish', 'publish active -> build finishedAt'],
  ['notify', 'client: completion event + GET', 'build finishedAt -> client knew'],
];

function criticalPath(run: FarmRun): CriticalPath {
  const { build } = run;
  const last = [...build.platforms].sort((a, b) => Date.parse(b.finishedAt ?? '') - Date.parse(a.finishedAt ?? ''))[0];
  const job = run.platformJobs[last.platform] ?? {};
  const created = Date.parse(build.createdAt);
  const started = Date.parse(last.startedAt ?? '');
  const finished = Date.parse(last.finishedAt ?? '');
  const buildFinished = Date.parse(build.finishedAt ?? '');
  const span = (from: number | undefined, to: number | undefined) =>
    from === undefined || to === undefined ? undefined : to - from;
  return {
    submit: created - run.submittedAt,
    enqueue: span(created, job.waiting),
    pickup: span(job.waiting, job.active),
    agentStart: span(job.active, started),
    build: finished - started,
    wrapUp: span(finished, job.completed),
    handoff: span(job.completed, run.publishJob.active),
    coordinator: span(run.publishJob.active, buildFinished),
    notify: run.doneAt - buildFinished,
  };
}

function handStepsSection(runs: HandRun[]): string[] {
  const keys: (keyof HandRun['steps'])[] = ['clone', 'bud', 'push', 'merge'];
  return [
    '## By-hand steps (ms, medians)',
    '',
    ...header(['clone', 'bud (both platforms)', 'push (both)', 'manifest create/add/push', 'total'], 0),
    row([...keys.map((k) => ms(median(runs.map((r) => r.steps[k])))), ms(median(runs.map((r) => r.totalMs)))]),
    '',
  ];
}

function profileSection(results: BenchResults): string[] {
  if (results.profile.length === 0) return [];
  const keys: (keyof AgentSteps)[] = ['clone', 'prepare', 'bud', 'pushOci', 'upload', 'destroy', 'total'];
  const names: Record<keyof AgentSteps, string> = {
    clone: 'clone (git init + fetch --depth 1 + checkout)',
    prepare: 'prepare (paths, registries.conf)',
    bud: 'buildah bud (commits into an OCI layout)',
    pushOci: 'buildah push oci:<work dir>',
    upload: 'RegistryClient.pushOciLayout',
    destroy: 'destroy (work dir removed)',
    total: 'total',
  };
  const column = (i: number, key: keyof AgentSteps) => {
    const values = results.profile.map((steps) => steps[i][key]).filter((v): v is number => v !== null);
    return values.length ? ms(median(values)) : '-';
  };
  return [
    `## Agent steps (ms, medians of ${results.profile.length} builds)`,
    '',
    "The agents' LocalBuildahBuilder run in the bench process, both platforms in parallel on new commits,",
    'timed from its own log lines; the agent wraps these in job and event handling (see the breakdown above).',
    '',
    ...header(['step', ...results.platforms.map((p) => (p === results.nativePlatform ? p : `${p} (emulated)`))]),
    ...keys
      // A step the builder no longer has (e.g. a separate `buildah push`) gets no row.
      .filter((key) => results.profile.some((steps) => steps.some((s) => s[key] !== null)))
      .map((key) => row([names[key], ...results.platforms.map((_p, i) => column(i, key))])),
    '',
  ];
}

export function verdictLine(results: BenchResults): string {
  const ratio = median(results.farm.map((r) => r.totalMs)) / median(results.hand.map((r) => r.totalMs));
  return `farm / by hand = ${ratio.toFixed(2)} (target <= ${results.target.toFixed(2)}): ${ratio <= results.target ? 'PASS' : 'MISS'}`;
}
