import 'reflect-metadata';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PATH_METADATA } from '@nestjs/common/constants';
import { parse, parseAllDocuments } from 'yaml';
import { ConfigError, loadAgentConfig, loadApiConfig, loadCoordinatorConfig } from '@farm/config';
import { HealthController } from '../../apps/api/src/health/health.controller';
import { parseAgentArgs } from '../../apps/agent/src/cli-args';

/**
 * No container engine or cluster runs here, so docker-compose.yml, the Dockerfile and
 * deploy/k8s/*.yaml are checked statically: they parse, every command names a real npm script,
 * and each process's environment passes that process's own config loader from @farm/config.
 */

type Env = Record<string, string>;
type Obj = Record<string, any>;

const ROOT = resolve(__dirname, '../..');
const K8S_DIR = join(ROOT, 'deploy/k8s');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
};

/** Stands in for every placeholder an operator must fill in; long enough for FARM_ADMIN_TOKEN. */
const FILLED = 'filled-in-by-the-operator-0123456789';
const NODE_NAME = 'node-a1.example.internal';

/** The npm script a container or service runs (`npm run X`, `npm start`), or undefined. */
function npmScript(command: string[]): string | undefined {
  if (command[0] !== 'npm') return undefined;
  if (command[1] === 'start') return 'start';
  if (command[1] === 'run' || command[1] === 'run-script') return command[2];
  throw new Error(`unexpected npm command: ${command.join(' ')}`);
}

/** Arguments after `--`, which npm hands to the script. */
function scriptArgs(command: string[]): string[] {
  const dashes = command.indexOf('--');
  return dashes < 0 ? [] : command.slice(dashes + 1);
}

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host.startsWith('127.') || host === '[::1]';
}

/**
 * Checks one process's environment the way the process itself will at start, plus what a
 * loader cannot know: its loopback defaults are wrong in a container, where 127.0.0.1 is the
 * container itself.
 */
function checkProcessEnv(script: string, env: Env, args: string[]): void {
  switch (script) {
    case 'start:api': {
      const config = loadApiConfig(env);
      expect(isLoopback(config.databaseUrl)).toBe(false);
      expect(isLoopback(config.redisUrl)).toBe(false);
      // Listening on loopback would hide the api from probes and Services.
      expect(['0.0.0.0', '::']).toContain(config.host);
      return;
    }
    case 'start:coordinator': {
      const config = loadCoordinatorConfig(env);
      expect(isLoopback(config.databaseUrl)).toBe(false);
      expect(isLoopback(config.redisUrl)).toBe(false);
      return;
    }
    case 'start:agent': {
      expect(env.DATABASE_URL).toBeUndefined();
      const config = loadAgentConfig(env);
      expect(isLoopback(config.redisUrl)).toBe(false);
      parseAgentArgs(args); // throws on an unknown flag or a bad --name
      return;
    }
    case 'migrate':
      // scripts/migrate.ts reads DATABASE_URL alone, defaulting to loopback.
      expect(env.DATABASE_URL).toMatch(/^postgres(ql)?:\/\//);
      expect(isLoopback(env.DATABASE_URL)).toBe(false);
      return;
    default:
      throw new Error(`no check for the process "npm run ${script}"`);
  }
}

/** The HTTP path Nest serves a HealthController method on. */
function healthPath(method: 'healthz' | 'readyz'): string {
  const base = String(Reflect.getMetadata(PATH_METADATA, HealthController) ?? '');
  const route = String(Reflect.getMetadata(PATH_METADATA, HealthController.prototype[method]));
  return `/${[base, route].join('/')}`.replace(/\/+/g, '/');
}

describe('Dockerfile', () => {
  const lines = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => line.trim() && !line.trimStart().startsWith('#'));
  const runSteps = lines.filter((line) => /^RUN\s/i.test(line)).flatMap((line) => line.slice(4).split(/&&|;/));

  it('runs only npm scripts and npx binaries that exist', () => {
    const deps = { ...pkg.dependencies, ...pkg.devDependencies };
    let npmSteps = 0;
    for (const step of runSteps) {
      const words = step.trim().split(/\s+/);
      const npm = words.indexOf('npm');
      if (npm >= 0 && ['run', 'start'].includes(words[npm + 1])) {
        npmSteps += 1;
        expect(Object.keys(pkg.scripts)).toContain(npmScript(words.slice(npm)));
      }
      const npx = words.indexOf('npx');
      if (npx >= 0) expect(Object.keys(deps)).toContain(words[npx + 1]);
    }
    expect(npmSteps).toBeGreaterThan(0);
  });

  it('installs from the lockfile it copies in', () => {
    expect(runSteps.some((step) => /\bnpm ci\b/.test(step))).toBe(true);
    expect(lines.find((line) => /^COPY\s.*package-lock\.json/.test(line))).toBeDefined();
  });

  it('builds every entry point the start scripts run', () => {
    // "build": swc <dirs> --out-dir dist: dist/<x>.js comes from <x>.ts in one of <dirs>.
    const build = /^swc (.+?) --out-dir dist\b/.exec(pkg.scripts.build);
    expect(build).not.toBeNull();
    const sourceDirs = build![1].split(/\s+/);
    for (const script of ['start:api', 'start:coordinator', 'start:agent', 'migrate']) {
      const entry = /^node dist\/(\S+)\.js$/.exec(pkg.scripts[script]);
      expect(entry).not.toBeNull();
      expect(existsSync(join(ROOT, `${entry![1]}.ts`))).toBe(true);
      expect(sourceDirs).toContain(entry![1].split('/')[0]);
    }
  });
});

describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, Obj>;
  };
  /** Compose interpolation: `${VAR}`, `${VAR:?message}`, `${VAR:-default}` as the operator sets it. */
  const interpolate = (value: unknown): string => String(value).replace(/\$\{[^}]+\}/g, FILLED);

  function serviceEnv(service: Obj): Env {
    const raw: unknown = service.environment ?? {};
    const entries = Array.isArray(raw)
      ? raw.map((item) => String(item).split(/=(.*)/s, 2) as [string, string])
      : Object.entries(raw as Record<string, unknown>);
    return Object.fromEntries(entries.map(([name, value]) => [name, interpolate(value)]));
  }

  const farmServices = Object.entries(compose.services).filter(([, s]) => Array.isArray(s.command) && s.image);
  const byScript = new Map(
    farmServices.flatMap(([name, s]) => {
      const script = npmScript(s.command as string[]);
      return script ? [[script, { name, service: s }] as const] : [];
    }),
  );

  it('runs migrate, api, coordinator and agent from npm scripts that exist', () => {
    expect([...byScript.keys()].sort()).toEqual(['migrate', 'start:agent', 'start:api', 'start:coordinator']);
    for (const script of byScript.keys()) expect(Object.keys(pkg.scripts)).toContain(script);
    for (const { service } of byScript.values()) {
      if (service.build !== undefined) expect(existsSync(join(ROOT, String(service.build), 'Dockerfile'))).toBe(true);
    }
  });

  it.each(['migrate', 'start:api', 'start:coordinator', 'start:agent'])(
    'gives "npm run %s" what it needs',
    (script) => {
      const { service } = byScript.get(script)!;
      checkProcessEnv(script, serviceEnv(service), scriptArgs(service.command as string[]));
    },
  );

  it('publishes the port the api listens on', () => {
    const { service } = byScript.get('start:api')!;
    const { port } = loadApiConfig(serviceEnv(service));
    const containerPorts = (service.ports as string[]).map((mapping) => Number(String(mapping).split(':').pop()));
    expect(containerPorts).toContain(port);
  });

  it('runs the agent privileged (buildah) with its state dir on a volume', () => {
    const { service } = byScript.get('start:agent')!;
    expect(service.privileged).toBe(true);
    const { stateDir } = loadAgentConfig(serviceEnv(service));
    expect((service.volumes as string[]).map((v) => String(v).split(':')[1])).toContain(stateDir);
  });
});

describe('deploy/k8s', () => {
  const files = readdirSync(K8S_DIR).filter((file) => file.endsWith('.yaml'));
  const objects: Obj[] = files.flatMap((file) => {
    const docs = parseAllDocuments(readFileSync(join(K8S_DIR, file), 'utf8'));
    const list = Array.isArray(docs) ? docs : [docs];
    for (const doc of list) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    }
    return list.map((doc) => doc.toJS() as Obj).filter(Boolean);
  });
  const find = (kind: string, name: string): Obj | undefined =>
    objects.find((o) => o.kind === kind && o.metadata?.name === name);

  /** The values of a ConfigMap or Secret, placeholders filled in when `fill` is set. */
  function data(kind: 'ConfigMap' | 'Secret', name: string, fill = true): Env {
    const object = find(kind, name);
    if (!object) throw new Error(`${kind} ${name} is not in deploy/k8s`);
    const values: Env = { ...object.data, ...object.stringData };
    if (kind === 'Secret' && object.data) {
      for (const key of Object.keys(object.data)) values[key] = Buffer.from(object.data[key], 'base64').toString();
    }
    return Object.fromEntries(
      Object.entries(values).map(([k, v]) => [k, fill ? String(v).replace(/REPLACE_ME/g, FILLED) : String(v)]),
    );
  }

  /** The container's environment as the kubelet builds it (envFrom first, env overrides). */
  function containerEnv(container: Obj, fill = true): Env {
    const env: Env = {};
    for (const from of (container.envFrom ?? []) as Obj[]) {
      if (from.configMapRef) Object.assign(env, data('ConfigMap', from.configMapRef.name, fill));
      if (from.secretRef) Object.assign(env, data('Secret', from.secretRef.name, fill));
    }
    for (const { name, value, valueFrom } of (container.env ?? []) as Obj[]) {
      if (value !== undefined) env[name] = String(value);
      else if (valueFrom?.configMapKeyRef)
        env[name] = data('ConfigMap', valueFrom.configMapKeyRef.name, fill)[valueFrom.configMapKeyRef.key];
      else if (valueFrom?.secretKeyRef)
        env[name] = data('Secret', valueFrom.secretKeyRef.name, fill)[valueFrom.secretKeyRef.key];
      else if (valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') env[name] = NODE_NAME;
      else throw new Error(`env ${name}: unsupported source ${JSON.stringify(valueFrom)}`);
      if (env[name] === undefined) throw new Error(`env ${name} refers to a missing key`);
    }
    return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''));
  }

  /** command + args with `$(VAR)` expanded from the container's env, as Kubernetes does. */
  function argv(container: Obj, env: Env): string[] {
    return [...(container.command ?? []), ...(container.args ?? [])].map((arg: string) =>
      String(arg).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole),
    );
  }

  const workloads = objects.filter((o) => ['Deployment', 'DaemonSet', 'Job'].includes(o.kind));
  const containers = workloads.flatMap((workload) =>
    (workload.spec.template.spec.containers as Obj[]).map((container) => ({ workload, container })),
  );
  const scriptOf = (container: Obj): string | undefined => npmScript(container.command ?? []);
  const agents = workloads.filter(
    (w) => w.kind === 'DaemonSet' && w.spec.template.spec.containers.some((c: Obj) => scriptOf(c) === 'start:agent'),
  );
  const api = containers.find(({ container }) => scriptOf(container) === 'start:api')!;

  it('parses into namespaced objects of the farm image', () => {
    expect(files.length).toBeGreaterThan(0);
    expect(find('Namespace', 'buildfarm')).toBeDefined();
    for (const object of objects.filter((o) => o.kind !== 'Namespace')) {
      expect(object.metadata.namespace).toBe('buildfarm');
    }
    for (const { container } of containers) expect(container.image).toBe('buildfarm:local');
    for (const workload of workloads.filter((w) => w.kind !== 'Job')) {
      const labels = workload.spec.template.metadata.labels as Env;
      for (const [key, value] of Object.entries(workload.spec.selector.matchLabels as Env)) {
        expect(labels[key]).toBe(value);
      }
    }
  });

  it('runs every process from an npm script that exists', () => {
    const scripts = containers.map(({ container }) => scriptOf(container));
    for (const script of scripts) expect(Object.keys(pkg.scripts)).toContain(script);
    expect(new Set(scripts)).toEqual(new Set(['migrate', 'start:api', 'start:coordinator', 'start:agent']));
    expect(find('Job', 'migrate')).toBeDefined();
  });

  it('gives every process what its config requires', () => {
    for (const { container } of containers) {
      const env = containerEnv(container);
      checkProcessEnv(scriptOf(container)!, env, scriptArgs(argv(container, env)));
    }
  });

  it('ships placeholders the api refuses, so an unedited Secret cannot go live', () => {
    expect(() => loadApiConfig(containerEnv(api.container, false))).toThrow(ConfigError);
    expect(() => loadApiConfig(containerEnv(api.container, false))).toThrow(/FARM_ADMIN_TOKEN/);
  });

  it('runs two api and two coordinator replicas', () => {
    for (const script of ['start:api', 'start:coordinator']) {
      const { workload } = containers.find(({ container }) => scriptOf(container) === script)!;
      expect(workload.kind).toBe('Deployment');
      expect(workload.spec.replicas).toBe(2);
    }
  });

  it("probes and serves the api's real health paths and port", () => {
    const { port } = loadApiConfig(containerEnv(api.container));
    const ports = api.container.ports as Obj[];
    const portOf = (ref: number | string): number | undefined =>
      typeof ref === 'number' ? ref : ports.find((p) => p.name === ref)?.containerPort;
    expect(ports.map((p) => p.containerPort)).toContain(port);
    expect(api.container.livenessProbe.httpGet.path).toBe(healthPath('healthz'));
    expect(api.container.readinessProbe.httpGet.path).toBe(healthPath('readyz'));
    expect(portOf(api.container.livenessProbe.httpGet.port)).toBe(port);
    expect(portOf(api.container.readinessProbe.httpGet.port)).toBe(port);

    const service = objects.find(
      (o) =>
        o.kind === 'Service' &&
        Object.entries(o.spec.selector as Env).every(([k, v]) => api.workload.spec.template.metadata.labels[k] === v),
    );
    expect(service).toBeDefined();
    for (const { targetPort } of service!.spec.ports as Obj[]) expect(portOf(targetPort)).toBe(port);
  });

  it('runs one agent DaemonSet per architecture, building natively', () => {
    const arches = agents.map((agent) => agent.spec.template.spec.nodeSelector['kubernetes.io/arch'] as string);
    expect(arches.sort()).toEqual(['amd64', 'arm64']);
    for (const agent of agents) {
      const arch = agent.spec.template.spec.nodeSelector['kubernetes.io/arch'] as string;
      expect(agent.metadata.name).toBe(`agent-${arch}`);
      const container = agent.spec.template.spec.containers[0] as Obj;
      const args = parseAgentArgs(scriptArgs(argv(container, containerEnv(container))));
      expect(args.platform).toBe(`linux/${arch}`);
      expect(args.emulated).toBe(false);
    }
  });

  it('names each agent after its node and keeps its state on a volume', () => {
    for (const agent of agents) {
      const pod = agent.spec.template.spec as Obj;
      const container = pod.containers[0] as Obj;
      const env = containerEnv(container);
      expect(parseAgentArgs(scriptArgs(argv(container, env))).name).toBe(NODE_NAME);
      expect(container.securityContext?.privileged).toBe(true);
      const { stateDir } = loadAgentConfig(env);
      const mount = (container.volumeMounts as Obj[]).find((m) => m.mountPath === stateDir);
      expect(mount).toBeDefined();
      const volume = (pod.volumes as Obj[]).find((v) => v.name === mount!.name);
      expect(volume?.hostPath ?? volume?.emptyDir).toBeDefined();
    }
  });

  it('lets a terminating agent drain before it is killed', () => {
    for (const agent of agents) {
      const pod = agent.spec.template.spec as Obj;
      const { drainGraceMs } = loadAgentConfig(containerEnv(pod.containers[0]));
      // The grace covers the drain plus a little time to close connections and exit.
      expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(drainGraceMs);
      expect(pod.terminationGracePeriodSeconds * 1000).toBeLessThanOrEqual(drainGraceMs + 60_000);
    }
  });

  it('gives agents a fenced Redis user and no database credentials', () => {
    const apiRedis = new URL(loadApiConfig(containerEnv(api.container)).redisUrl);
    for (const agent of agents) {
      const container = agent.spec.template.spec.containers[0] as Obj;
      const env = containerEnv(container);
      expect(env.DATABASE_URL).toBeUndefined();
      // Not even under another name: no Secret key holding the database URL reaches an agent.
      const secretKeys = ((container.env ?? []) as Obj[]).map((e) => e.valueFrom?.secretKeyRef?.key as string);
      expect(secretKeys).not.toContain('DATABASE_URL');
      expect(((container.envFrom ?? []) as Obj[]).some((from) => from.secretRef)).toBe(false);
      const redis = new URL(loadAgentConfig(env).redisUrl);
      expect(redis.username).not.toBe('');
      expect(redis.username).not.toBe('default');
      expect(redis.username).not.toBe(apiRedis.username);
    }
  });
});
