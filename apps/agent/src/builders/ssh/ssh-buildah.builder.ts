import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix, relative, sep } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { UnrecoverableError } from 'bullmq';
import { formatPlatform, normalizePlatform, parsePlatform, platformFromMachine, type Platform } from '@farm/domain';
import { GitMirrors, InvalidRefError, InvalidRepoUrlError, RefNotFoundError } from '@farm/git';
import { labelOciLayoutImage, type RegistryClient } from '@farm/oci';
import { SECRET_NAME, type PlatformBuildJob } from '@farm/queue';
import { exitProgram } from '../../platform-probe';
import type { Builder, BuildContext, BuiltImage } from '../builder';
import { budArguments, imageLabels, insideCheckout, mountSources, registriesConf } from '../buildah-job';
import {
  pushToLayoutArguments,
  RegistryLayerCache,
  type BudOutput,
  type RegistryCacheSetting,
} from '../registry-cache';
import { fetchUploadedContext } from '../uploaded-context';
import { RemoteCommandError, SshConnection, SshConnectionError } from './connection';
import { hostKeyPolicy, type HostKeyPolicy } from './host-key';
import { Collector, parseLayoutListing } from './layout-listing';
import {
  BUILD,
  CANCEL_JOB,
  CLEAN_AGENT,
  LIST_LAYOUT,
  PROBE,
  RECEIVE_SECRET,
  RECEIVE_SOURCE,
  REMOVE_JOB,
  RUN_PROBE_PROGRAM,
} from './remote-scripts';
import { shellCommand } from './shell-quote';
import { parseSshUrl, type SshAddress } from './ssh-url';

/** A builder host reached over SSH, with its host key pinned. */
export interface SshBuilderTarget {
  /** `ssh://user@host[:port]` */
  url: string;
  /** The private key the agent logs in with (OpenSSH or PEM format). */
  privateKey: Buffer;
  /** For an encrypted private key. */
  passphrase?: string;
  /** The host's known_hosts line(s), e.g. from `ssh-keyscan -p PORT HOST` checked out of band. */
  knownHostsLine?: string;
  /** The host key's `SHA256:<base64>` fingerprint, as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint?: string;
}

/** How an agent uses its SSH builder host. */
export interface SshBuilderOptions {
  /** The agent's name: names its state on the host (work dirs, buildah storage). */
  name: string;
  /** The platform to build; default: the host's own (`uname -m`). A different one needs `emulated`. */
  platform?: Platform | string;
  /** Allows building `platform` through the host's qemu-user emulation (never silently). */
  emulated?: boolean;
  allowFileRepos: boolean;
  /** Pushes the built images (from the agent: push credentials never reach the host). */
  registry: RegistryClient;
  /** Registries the host's buildah may pull base images from over plain HTTP. */
  insecureRegistries: string[];
  /** docker config.json content for pulls of private base images on the host, or undefined. */
  registryAuth?: unknown;
  /** Where uploaded contexts (`farm build --upload`) are fetched from; undefined: none are built. */
  contextRepository?: { registry: string; repository: string };
  /** FARM_REGISTRY_CACHE, as the host reaches it: the registry layer cache of the pool; undefined: none. */
  registryCache?: RegistryCacheSetting;
  /** The agent's state on the host (an absolute path). Default `/var/lib/buildfarm-ssh`. */
  remoteStateDir?: string;
  /** Where the agent keeps checkouts and fetched images of running jobs. Default `$TMPDIR/buildfarm-ssh`. */
  localWorkDir?: string;
  /** Where the agent keeps its git mirrors, one per repository (kept between jobs). Default `<localWorkDir>-git`. */
  gitMirrorDir?: string;
  /** SSH keepalive period; a host silent for `keepaliveCountMax` periods counts as lost. Default 2000 ms. */
  keepaliveIntervalMs?: number;
  /** Default 3. */
  keepaliveCountMax?: number;
  /** Connecting, including the handshake, gives up after this. Default 15000 ms. */
  connectTimeoutMs?: number;
  /** Messages about the connection (not a job's output). */
  log: (line: string) => void;
}

interface Settings extends SshAddress {
  target: SshBuilderTarget;
  options: SshBuilderOptions;
  hostKey: HostKeyPolicy;
  /** `<remoteStateDir>/agents/<name>` as given; the session holds its resolved form. */
  agentDir: string;
  localDir: string;
}

/** A live connection and what it found on the host. */
interface Session {
  connection: SshConnection;
  /** The agent's dir on the host, symlinks resolved. */
  root: string;
  machine: string;
}

interface JobState {
  session?: Session;
  succeeded: boolean;
}

const DEFAULT_REMOTE_STATE_DIR = '/var/lib/buildfarm-ssh';
const AGENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const BUILD_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;
/** Blobs up to this size come with the layout listing; larger ones only when the registry lacks them. */
const SMALL_FILE_BYTES = 256 * 1024;
const MAX_LISTING_BYTES = 64 * 1024 * 1024;

/**
 * Connects to a builder host over SSH and returns a Builder for it:
 * verifies the host key against the pin (an unknown or changed key is refused; a pin is
 * required), detects the host's platform with `uname -m`, proves the host runs the platform to
 * build, checks that buildah and tar are there, and removes what an earlier connection of this
 * agent left (work dirs, their processes, buildah working containers).
 *
 * @throws HostKeyError (no pin, or a key that is not the pinned one), SshConnectionError
 * (unreachable, authentication refused), Error for a host that cannot serve (missing tools,
 * platform not runnable).
 */
export async function connectSshBuilder(target: SshBuilderTarget, options: SshBuilderOptions): Promise<SshBuilder> {
  const address = parseSshUrl(target.url);
  if (!AGENT_NAME.test(options.name)) {
    throw new Error('the agent name may contain letters, digits, ".", "_" and "-" (at most 64)');
  }
  const remoteStateDir = options.remoteStateDir ?? DEFAULT_REMOTE_STATE_DIR;
  if (!posix.isAbsolute(remoteStateDir)) throw new Error(`remoteStateDir must be absolute: ${remoteStateDir}`);
  const settings: Settings = {
    ...address,
    target,
    options,
    hostKey: hostKeyPolicy(target, address.host, address.port),
    agentDir: posix.join(remoteStateDir, 'agents', options.name),
    localDir: join(options.localWorkDir ?? join(tmpdir(), 'buildfarm-ssh'), options.name),
  };

  const session = await openSession(settings);
  try {
    const native = platformFromMachine(session.machine);
    const platform = options.platform
      ? typeof options.platform === 'string'
        ? parsePlatform(options.platform)
        : normalizePlatform(options.platform)
      : native;
    const emulated = formatPlatform(platform) !== formatPlatform(native);
    const where = `${address.host}:${address.port}`;
    if (emulated && !options.emulated) {
      // DESIGN.md: emulation is a last resort, never silent, always opt-in.
      throw new Error(
        `${where} runs ${formatPlatform(native)}, not ${formatPlatform(platform)}; building ` +
          `${formatPlatform(platform)} there needs qemu-user emulation, which must be allowed explicitly`,
      );
    }
    await probePlatform(session, platform, emulated, where);
    await rm(settings.localDir, { recursive: true, force: true });
    await mkdir(settings.localDir, { recursive: true });
    options.log(
      `ssh builder ${address.user}@${where}: ${formatPlatform(platform)}${emulated ? ' (emulated with qemu-user)' : ''}`,
    );
    return new SshBuilder(settings, platform, emulated, session);
  } catch (error) {
    await session.connection.close();
    throw error;
  }
}

/**
 * Builds on a remote host with its buildah, driven over one SSH connection (a channel per
 * command). The agent checks out the exact commit itself and streams it to the host as a tar
 * archive; the host builds into an OCI layout; the agent fetches what the registry lacks of it
 * and pushes it by digest, without a tag, like the local builder.
 *
 * A lost connection fails the running jobs with SshConnectionError (BullMQ retries them); the
 * next job reconnects, and every connection first kills and removes what this agent left on
 * the host.
 */
export class SshBuilder implements Builder {
  readonly platform: Platform;
  readonly emulated: boolean;
  /** What the host runs natively, as first detected. */
  private readonly hostPlatform: string;
  private session?: Promise<Session>;
  private closed = false;
  private readonly jobs = new Map<string, JobState>();
  /** Removing leftover buildah containers; new jobs wait for it (see destroy). */
  private storageCleanup: Promise<void> = Promise.resolve();
  private commandCount = 0;
  /** The agent checks out from a mirror per repository, which fetches only the commits it lacks. */
  private readonly mirrors: GitMirrors;
  private readonly registryCache?: RegistryLayerCache;

  /** @internal Use {@link connectSshBuilder}. */
  constructor(
    private readonly settings: Settings,
    platform: Platform,
    emulated: boolean,
    session: Session,
  ) {
    this.platform = platform;
    this.emulated = emulated;
    this.hostPlatform = formatPlatform(platformFromMachine(session.machine));
    this.session = Promise.resolve(session);
    this.watch(session);
    this.mirrors = new GitMirrors(settings.options.gitMirrorDir ?? `${settings.localDir}-git`);
    const cache = settings.options.registryCache;
    if (cache) this.registryCache = new RegistryLayerCache(cache, platform);
  }

  /** `user@host:port` of the builder host. */
  get address(): string {
    return `${this.settings.user}@${this.settings.host}:${this.settings.port}`;
  }

  async setup(job: PlatformBuildJob, context: BuildContext): Promise<void> {
    const key = jobKey(job, this.platform);
    const state: JobState = { succeeded: false };
    this.jobs.set(key, state);
    await this.storageCleanup;
    const session = await this.connection();
    state.session = session;
    const local = join(this.settings.localDir, key);
    const remote = this.remoteJobDir(session, key);

    await rm(local, { recursive: true, force: true });
    await mkdir(local, { recursive: true });
    if (job.contextDigest) {
      // Unpacked (and vetted) here, then sent like a checkout: the host never unpacks an untrusted archive.
      const { registry, contextRepository } = this.settings.options;
      await fetchUploadedContext(
        job.contextDigest,
        { registry, repository: contextRepository },
        join(local, 'src'),
        context,
      );
      context.log(`sending the source to ${this.settings.host}`);
      return this.sendSource(session, remote, join(local, 'src'), context);
    }
    context.log(`checking out ${job.repo} at ${job.commit}`);
    try {
      await this.mirrors.checkout(job.repo, job.commit, join(local, 'src'), {
        allowFile: this.settings.options.allowFileRepos,
        signal: context.signal,
        onLog: context.log,
      });
    } catch (error) {
      // The same request fails the same way on a retry: fail once, clearly.
      if (error instanceof RefNotFoundError) {
        throw new UnrecoverableError(`commit ${job.commit} is not in ${job.repo}: ${error.message}`);
      }
      if (error instanceof InvalidRepoUrlError || error instanceof InvalidRefError) {
        throw new UnrecoverableError(error.message);
      }
      throw error;
    }

    context.log(`sending the source to ${this.settings.host}`);
    await this.sendSource(session, remote, join(local, 'src'), context);
  }

  async run(job: PlatformBuildJob, context: BuildContext): Promise<BuiltImage> {
    const key = jobKey(job, this.platform);
    const state = this.jobs.get(key);
    if (!state?.session) throw new Error(`run() without setup() for ${key}`);
    const session = state.session;
    if (session.connection.closed) {
      throw new SshConnectionError(`connection to ${this.settings.host} was lost since the job's setup`);
    }
    const local = join(this.settings.localDir, key);
    const remote = this.remoteJobDir(session, key);
    const source = await realpath(join(local, 'src'));
    const contextDir = await insideCheckout(source, job.context, 'context');
    const dockerfile = await insideCheckout(source, job.dockerfile, 'dockerfile');
    const remoteSource = (path: string): string =>
      posix.join(remote, 'src', relative(source, path).split(sep).join('/'));
    const platform = formatPlatform(this.platform);

    // The checkout on the agent is the same tree as the host's copy: read the Dockerfile here.
    const dockerfileText = await readFile(dockerfile, 'utf8');
    const { insecureRegistries, registryCache } = this.settings.options;
    const registries = registriesConf(dockerfileText, insecureRegistries, registryCache?.registry);
    const env = [
      `CONTAINERS_REGISTRIES_CONF=${remote}/registries.conf`,
      `TMPDIR=${remote}/tmp`,
      'BUILDAH_ISOLATION=chroot',
    ];
    // Credentials travel on stdin into a 0600 file: as an argument, `ps` on the host would show them.
    const auth = this.settings.options.registryAuth;
    const authFile = auth ? `${remote}/auth.json` : '';
    if (authFile) env.push(`REGISTRY_AUTH_FILE=${authFile}`);

    // Build secrets travel on stdin into 0600 files beside the source, removed after the build.
    const secretsDir = `${remote}/secrets`;
    const secretFiles: Record<string, string> = {};
    for (const [name, value] of Object.entries(context.secrets ?? {})) {
      if (!SECRET_NAME.test(name)) throw new UnrecoverableError(`invalid build secret id ${JSON.stringify(name)}`);
      await session.connection.exec(script(RECEIVE_SECRET, secretsDir, name), {
        name: 'sending a build secret',
        stdin: Buffer.from(value),
        signal: context.signal,
      });
      secretFiles[name] = `${secretsDir}/${name}`;
    }

    // As the local builder: commit straight into an OCI layout, or with the registry cache tag
    // the image in the host's storage and push it into the layout there.
    const storage = this.storageArgs(session);
    const inJob = (command: string[], authFromStdin: boolean): string =>
      script(
        BUILD,
        remote,
        `${remote}/src`,
        this.pidFile(remote),
        registries,
        `${remote}/registries.conf`,
        authFromStdin ? authFile : '',
        'env',
        ...env,
        'buildah',
        ...storage,
        ...command,
      );
    /** The job's name in the host's storage, once a bud was told to tag the image there. */
    let storageImage: string | undefined;
    const bud = async (output: BudOutput): Promise<void> => {
      storageImage ??= output.storageImage;
      const budArgs = budArguments(job, {
        platform,
        dockerfile: remoteSource(dockerfile),
        contextDir: remoteSource(contextDir),
        secretFiles,
        ...output,
      });
      await this.execInJob(session, remote, inJob(budArgs, true), {
        name: 'buildah bud',
        stdin: auth ? Buffer.from(JSON.stringify(auth)) : undefined,
        context,
      });
    };
    const remoteLayout = `${remote}/oci`;
    context.log(`building ${platform} on ${this.settings.host}${this.emulated ? ' (emulated with qemu-user)' : ''}`);
    try {
      let output: BudOutput = { tag: `oci:${remoteLayout}:image` };
      try {
        if (this.registryCache) output = await this.registryCache.build(job, remoteLayout, context, bud);
        else await bud(output);
      } catch (error) {
        // The same source fails the same way again (Dockerfile error, failing RUN): no retry.
        // A signal (OOM killer, reboot) or a lost connection is worth another attempt.
        if (error instanceof RemoteCommandError && error.exitCode !== null && !context.signal.aborted) {
          throw new UnrecoverableError(`build failed: ${error.message}`);
        }
        throw error;
      } finally {
        // destroy() removes the job dir too, but the secrets go at once.
        if (Object.keys(secretFiles).length > 0) {
          await session.connection
            .exec(shellCommand(['rm', '-rf', '--', secretsDir]), { name: 'removing the build secrets' })
            .catch((error: Error) => context.log(`could not remove the build secrets yet: ${error.message}`));
        }
      }
      if (output.storageImage) {
        const push = pushToLayoutArguments(output.storageImage, remoteLayout);
        await this.execInJob(session, remote, inJob(push, false), { name: 'buildah push', context });
      }
    } finally {
      // The name goes, the layers stay as cache; a bud that failed early may not have tagged anything.
      if (storageImage && !session.connection.closed) {
        await session.connection
          .exec(shellCommand(['buildah', ...storage, 'rmi', storageImage]), { name: 'buildah rmi' })
          .catch(() => undefined);
      }
    }

    const layout = join(local, 'oci');
    context.onPhase?.('pushing');
    await this.fetchLayout(session, remoteLayout, layout, job, context);
    context.log(`pushing to ${job.pushTo.registry}/${job.pushTo.repository}`);
    const mountFrom = mountSources(dockerfileText, job.pushTo.registry);
    await labelOciLayoutImage(layout, imageLabels(job));
    const descriptor = await this.settings.options.registry.pushOciLayout(layout, job.pushTo, { mountFrom });
    context.log(`pushed ${descriptor.digest}`);
    state.succeeded = true;
    return { digest: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size };
  }

  /**
   * Kills whatever of the job still runs on the host and removes its work dir there and here.
   * Idempotent. The built image is in the work dir's OCI layout; a name it had in the host's
   * storage (registry cache) run() removed, or the next connection's cleanup does. When the
   * connection is gone, a reconnect is started in the background: it removes the job's dir with
   * the agent's others.
   */
  async destroy(job: PlatformBuildJob): Promise<void> {
    let key: string;
    try {
      key = jobKey(job, this.platform);
    } catch {
      return; // setup refused the job before creating anything
    }
    const state = this.jobs.get(key);
    this.jobs.delete(key);
    await rm(join(this.settings.localDir, key), { recursive: true, force: true });
    if (this.closed) return;
    const session = state?.session ?? (await this.liveSession());
    if (!session || session.connection.closed) {
      this.connection().catch((error: Error) => this.settings.options.log(`reconnecting failed: ${error.message}`));
      return;
    }
    await session.connection.exec(script(REMOVE_JOB, this.remoteJobDir(session, key)), {
      name: 'removing the work dir',
    });
    // A canceled or failed build may leave a buildah working container behind. `rm --all` is
    // only safe while no other job builds, and jobs starting meanwhile wait for it.
    if (state && !state.succeeded && this.jobs.size === 0) {
      this.storageCleanup = session.connection
        .exec(shellCommand(['buildah', ...this.storageArgs(session), 'rm', '--all']), { name: 'buildah rm --all' })
        .then(
          () => undefined,
          (error: Error) => this.settings.options.log(`removing leftover containers failed: ${error.message}`),
        );
      await this.storageCleanup;
    }
  }

  /** Closes the connection. Running jobs fail; the next connection of this agent cleans up after them. */
  async close(): Promise<void> {
    this.closed = true;
    const session = await this.liveSession();
    await session?.connection.close();
  }

  /** The live session, reconnecting (and cleaning up after the lost one) when needed. */
  private async connection(): Promise<Session> {
    if (this.closed) throw new Error(`the SSH builder for ${this.address} is closed`);
    const current = this.session;
    if (current) {
      const session = await current.catch(() => undefined);
      if (session && !session.connection.closed) return session;
      // Another caller may have started the reconnect while this one waited.
      if (this.session !== current) return this.connection();
    }
    const next = this.reconnect();
    this.session = next;
    return next;
  }

  private async liveSession(): Promise<Session | undefined> {
    const session = await this.session?.catch(() => undefined);
    return session && !session.connection.closed ? session : undefined;
  }

  private async reconnect(): Promise<Session> {
    this.settings.options.log(`reconnecting to ${this.address}`);
    const session = await openSession(this.settings);
    if (this.closed) {
      await session.connection.close();
      throw new Error(`the SSH builder for ${this.address} is closed`);
    }
    const native = formatPlatform(platformFromMachine(session.machine));
    if (native !== this.hostPlatform) {
      await session.connection.close();
      throw new Error(`${this.address} now runs ${native}, not ${this.hostPlatform} as before`);
    }
    this.watch(session);
    return session;
  }

  private watch(session: Session): void {
    session.connection.onClose((reason) => {
      if (!this.closed) this.settings.options.log(`connection to ${this.address} lost: ${reason.message}`);
    });
  }

  private remoteJobDir(session: Session, key: string): string {
    return `${session.root}/work/${key}`;
  }

  private storageArgs(session: Session): string[] {
    return ['--root', `${session.root}/storage`, '--runroot', `${session.root}/run`, '--storage-driver', 'overlay'];
  }

  /**
   * Runs `command` (a script that records its process group in a pidfile of the job dir) with
   * the job's output and cancel: a cancel kills that process group, since closing the channel
   * alone would not stop the remote command.
   */
  private execInJob(
    session: Session,
    jobDir: string,
    command: string,
    options: { name: string; stdin?: Buffer | Readable; context: BuildContext },
  ): Promise<string[]> {
    const { context, ...rest } = options;
    return session.connection.exec(command, {
      ...rest,
      onLine: context.log,
      signal: context.signal,
      onAbort: async () => {
        await session.connection.exec(script(CANCEL_JOB, jobDir), { name: 'canceling' });
      },
    });
  }

  private pidFile(jobDir: string): string {
    return `${jobDir}/command-${++this.commandCount}.pid`;
  }

  /** Streams the checkout to the host as a tar archive, unpacked into `<jobDir>/src`. */
  private async sendSource(session: Session, jobDir: string, source: string, context: BuildContext): Promise<void> {
    const tar = spawn('tar', ['-C', source, '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    tar.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    const packed = new Promise<void>((resolve, reject) => {
      tar.on('error', (error) => reject(new Error(`cannot run tar: ${error.message}`)));
      tar.on('close', (code) =>
        code === 0 ? resolve() : reject(new Error(`tar of the checkout failed: ${stderr.trim()}`)),
      );
    });
    packed.catch(() => undefined);
    try {
      await this.execInJob(session, jobDir, script(RECEIVE_SOURCE, jobDir, this.pidFile(jobDir)), {
        name: 'sending the source',
        // Consumed from now on: Node drops a child's unread output when the child exits
        // (flushStdio), which a small tar does before the channel is open.
        stdin: tar.stdout.pipe(new PassThrough()),
        context,
      });
      await packed;
    } finally {
      if (tar.exitCode === null && tar.signalCode === null) tar.kill('SIGKILL');
    }
  }

  /**
   * Copies the host's OCI layout to `layout` on the agent, leaving out the blobs the target
   * repository already has (base layers, usually): pushOciLayout skips those without reading
   * them. One round trip brings the index, manifest, config and small layers; each large
   * layer the registry lacks takes one more.
   */
  private async fetchLayout(
    session: Session,
    remoteLayout: string,
    layout: string,
    job: PlatformBuildJob,
    context: BuildContext,
  ): Promise<void> {
    const listing = new Collector(MAX_LISTING_BYTES);
    await session.connection.exec(script(LIST_LAYOUT, remoteLayout, String(SMALL_FILE_BYTES)), {
      name: 'listing the image',
      stdout: listing,
      signal: context.signal,
    });
    await finished(listing);
    const small = parseLayoutListing(listing.content());
    const smallFile = (path: string): Buffer => {
      const body = small.get(path);
      if (!body) throw new Error(`the built image's layout lacks ${path} or it is unexpectedly large`);
      return body;
    };

    const indexBody = smallFile('index.json');
    const index = parseJson(indexBody, 'index.json') as { manifests?: { digest?: unknown }[] };
    const manifestDigest = index.manifests?.length === 1 ? index.manifests[0]?.digest : undefined;
    const manifestPath = blobPath(checkDigest(manifestDigest, 'the image manifest'));
    const manifestBody = smallFile(manifestPath);
    const manifest = parseJson(manifestBody, 'the image manifest') as {
      config?: { digest?: unknown };
      layers?: { digest?: unknown }[];
    };
    const blobs = [
      ...new Set([manifest.config, ...(manifest.layers ?? [])].map((d) => checkDigest(d?.digest, 'a blob'))),
    ];
    const registry = this.settings.options.registry;
    // The config always comes: the labels are set in it here (imageLabels), making a new one.
    const config = checkDigest(manifest.config?.digest, 'the image config');
    const present = await Promise.all(
      blobs.map(async (digest) => (digest === config ? false : registry.hasBlob(job.pushTo, digest))),
    );
    const missing = blobs.filter((_, i) => !present[i]).map(blobPath);

    await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(join(layout, 'index.json'), indexBody);
    await writeFile(join(layout, manifestPath), manifestBody);
    const large = missing.filter((path) => !small.has(path));
    context.log(
      `fetching ${missing.length} of ${blobs.length} blobs from ${this.settings.host} (${large.length} large)`,
    );
    for (const path of missing) {
      const body = small.get(path);
      if (body) {
        await writeFile(join(layout, path), body);
        continue;
      }
      const file = createWriteStream(join(layout, path));
      try {
        await session.connection.exec(shellCommand(['cat', '--', `${remoteLayout}/${path}`]), {
          name: `fetching ${path}`,
          stdout: file,
          signal: context.signal,
        });
        await finished(file);
      } finally {
        file.destroy();
      }
    }
  }
}

/** Connects, checks the host can serve, and cleans up after this agent's earlier connections. */
async function openSession(settings: Settings): Promise<Session> {
  const { options } = settings;
  const where = `${settings.host}:${settings.port}`;
  const connection = await SshConnection.open({
    ...settings,
    privateKey: settings.target.privateKey,
    passphrase: settings.target.passphrase,
    hostKey: settings.hostKey,
    keepaliveIntervalMs: options.keepaliveIntervalMs ?? 2000,
    keepaliveCountMax: options.keepaliveCountMax ?? 3,
    readyTimeoutMs: options.connectTimeoutMs ?? 15_000,
  });
  try {
    // Every line, not just the last few: a login script on the host may print its own.
    const lines: string[] = [];
    await connection.exec(script(PROBE, settings.agentDir), { name: 'probing the host', onLine: (l) => lines.push(l) });
    const found = new Map<string, string[]>();
    for (const line of lines) {
      const at = line.indexOf('=');
      if (at > 0) found.set(line.slice(0, at), [...(found.get(line.slice(0, at)) ?? []), line.slice(at + 1)]);
    }
    const missing = found.get('missing') ?? [];
    if (missing.length > 0) {
      throw new Error(`${where} has no ${missing.join(' and ')}: a builder host needs sshd, buildah and tar`);
    }
    const root = found.get('root')?.[0];
    const machine = found.get('machine')?.[0];
    const [pid, group] = (found.get('group')?.[0] ?? '').split(' ');
    if (!root || !machine) throw new Error(`probing ${where} failed: ${lines.join(' | ')}`);
    if (!pid || pid !== group) {
      // Cancel kills a build by its process group; without one of its own that is impossible.
      throw new Error(
        `${where} does not start SSH commands in a process group of their own (pid ${pid}, group ${group})`,
      );
    }
    const session = { connection, root, machine };
    const storage = ['--root', `${root}/storage`, '--runroot', `${root}/run`, '--storage-driver', 'overlay'];
    await connection.exec(script(CLEAN_AGENT, root, ...storage), {
      name: 'cleaning up',
      onLine: (line) => {
        if (line.startsWith('removed=')) options.log(`removed a stale work dir on ${where}: ${line.slice(8)}`);
      },
    });
    return session;
  } catch (error) {
    await connection.close();
    throw error;
  }
}

/** Runs the smallest program of `platform` on the host: it must execute, natively or emulated. */
async function probePlatform(session: Session, platform: Platform, emulated: boolean, where: string): Promise<void> {
  const name = formatPlatform(platform);
  const program = exitProgram(platform.architecture);
  if (!program) {
    if (!emulated) return;
    throw new Error(`cannot verify that ${where} runs ${name}: no probe program for ${platform.architecture}`);
  }
  try {
    await session.connection.exec(script(RUN_PROBE_PROGRAM, session.root), {
      name: `a ${name} program`,
      stdin: program,
    });
  } catch (error) {
    if (!(error instanceof RemoteCommandError)) throw error;
    const hint = emulated
      ? ` (is qemu-user-static installed there and its binfmt_misc handler for ${platform.architecture} enabled?)`
      : '';
    throw new Error(`${where} cannot run ${name} programs: ${error.message}${hint}`);
  }
}

/** `exec sh -c SCRIPT sh ARGS...`: `exec` keeps the script the session's process group leader. */
function script(text: string, ...args: string[]): string {
  return `exec ${shellCommand(['sh', '-c', text, 'sh', ...args])}`;
}

/** The job's dir name on both sides; the build id must not be able to leave the work dir. */
function jobKey(job: PlatformBuildJob, platform: Platform): string {
  if (!BUILD_ID.test(job.buildId)) throw new UnrecoverableError(`invalid build id ${JSON.stringify(job.buildId)}`);
  return `${job.buildId}-${formatPlatform(platform).replace(/\//g, '-')}`;
}

/** A digest read from the host's layout: only sha256, so that it makes a safe path. */
function checkDigest(digest: unknown, what: string): string {
  if (typeof digest !== 'string' || !SHA256_DIGEST.test(digest)) {
    throw new Error(`the built image's layout has an invalid digest for ${what}: ${String(digest)}`);
  }
  return digest;
}

function blobPath(digest: string): string {
  return `blobs/sha256/${digest.slice('sha256:'.length)}`;
}

function parseJson(body: Buffer, what: string): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new Error(`the built image's layout has an unreadable ${what}`);
  }
}
