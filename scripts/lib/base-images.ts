import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repositoryRoot } from './repository-root';
import { promisify } from 'node:util';

const run = promisify(execFile);

const REPO_ROOT = repositoryRoot();
const BUSYBOX_DIR = join(REPO_ROOT, '.cache', 'busybox');
/** The platforms of the base image, as `scripts/setup.sh` provides busybox for them. */
export const BASE_PLATFORMS = ['linux/amd64', 'linux/arm64'] as const;
const BASE_REPOSITORY = 'base/busybox:latest';
const LAYOUT_CACHE_DIR = join(REPO_ROOT, '.cache', 'base-images');
// Part of the cache key: change it whenever the image recipe below changes.
const BASE_RECIPE_VERSION = 'busybox-base-1';
// Fixed creation time and file times: the same binaries give the same digests on every push.
const SOURCE_DATE_EPOCH = 1_700_000_000;

/** Credentials for a registry that requires them. */
export interface RegistryAuth {
  username: string;
  password: string;
}

/** buildah with storage of its own in a temp dir, so it never meets another buildah user's images. */
export interface IsolatedBuildah {
  /** The temp dir holding storage (`root`, `runroot`); removed by {@link IsolatedBuildah.remove}. */
  dir: string;
  /** Global flags selecting this storage, to put right after `buildah`. */
  storageArgs: string[];
  /** Runs `buildah <storageArgs> <args>` and returns its trimmed stdout; rejects with stderr in the message. */
  buildah(...args: string[]): Promise<string>;
  /** Deletes containers, images and the storage dir. Safe to call twice. */
  remove(): Promise<void>;
}

/** Creates an {@link IsolatedBuildah} (overlay storage driver, which works here and is ~3x faster than vfs). */
export async function createIsolatedBuildah(): Promise<IsolatedBuildah> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-buildah-'));
  const storageArgs = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--storage-driver', 'overlay'];
  const buildah = async (...args: string[]): Promise<string> => {
    try {
      const { stdout } = await run('buildah', [...storageArgs, ...args], { maxBuffer: 64 * 1024 * 1024 });
      return stdout.trim();
    } catch (error) {
      const { stderr } = error as { stderr?: string };
      throw new Error(`buildah ${args.join(' ')} failed: ${(stderr ?? String(error)).trim()}`);
    }
  };
  return {
    dir,
    storageArgs,
    buildah,
    remove: async () => {
      // Unmounts whatever is still mounted before the files go.
      await buildah('rm', '--all').catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const pushes = new Map<string, Promise<string>>();

/**
 * Pushes a multi-arch `busybox` base image (linux/amd64 + linux/arm64, as an OCI image index) to
 * `${registryHost}/base/busybox:latest` and returns that reference. Built with real buildah from
 * the static busybox binaries `scripts/setup.sh` put in `.cache/busybox`: every applet is a
 * symlink to `/bin/busybox`, plus `/etc/passwd`, `/etc/group`, `/tmp` and `/root`, so
 * `RUN uname -m > /arch` works (arm64 through qemu-user binfmt on amd64 hosts).
 *
 * The build runs once per machine and binaries: its result is kept as an OCI layout in
 * `.cache/base-images/` and copied to each registry with skopeo (~0.2 s instead of a ~2 s build).
 * Cached per registry host within the process, and a no-op when the registry already has this very index.
 * Images are reproducible: the same binaries always give the same digests.
 */
export function pushBusyboxBase(registryHost: string, auth?: RegistryAuth): Promise<string> {
  let push = pushes.get(registryHost);
  if (!push) {
    push = pushToRegistry(registryHost, auth);
    pushes.set(registryHost, push);
    // A failure must not stick: the next call tries again.
    push.catch(() => pushes.delete(registryHost));
  }
  return push;
}

async function pushToRegistry(registryHost: string, auth: RegistryAuth | undefined): Promise<string> {
  const reference = `${registryHost}/${BASE_REPOSITORY}`;
  const layout = await busyboxLayout();
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  if ((await registryDigest(registryHost, auth)) === index.manifests[0]?.digest) return reference;
  await run('skopeo', [
    'copy',
    '--all',
    '--quiet',
    '--preserve-digests',
    '--dest-tls-verify=false',
    ...(auth ? ['--dest-creds', `${auth.username}:${auth.password}`] : []),
    `oci:${layout}:latest`,
    `docker://${reference}`,
  ]).catch((error: { stderr?: string }) => {
    throw new Error(
      `pushing ${layout} to ${reference} failed (delete that cached layout if it is damaged): ${error.stderr ?? String(error)}`,
    );
  });
  return reference;
}

let layoutBuild: Promise<string> | undefined;

/** The OCI layout of the base image in `.cache/base-images/`, built first if needed. */
function busyboxLayout(): Promise<string> {
  layoutBuild ??= (async () => {
    const key = createHash('sha256').update(BASE_RECIPE_VERSION);
    for (const platform of BASE_PLATFORMS) key.update(await readFile(await busyboxBinary(archOf(platform))));
    const layout = join(LAYOUT_CACHE_DIR, `busybox-${key.digest('hex').slice(0, 16)}`);
    if (await exists(layout)) return layout;

    // Built beside its final place and renamed into it: other test processes either see no
    // layout or a complete one; when two build at once, the first rename wins.
    await mkdir(LAYOUT_CACHE_DIR, { recursive: true });
    const building = await mkdtemp(`${layout}.building-`);
    try {
      await buildBusyboxLayout(building);
      await rename(building, layout).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
      });
    } finally {
      await rm(building, { recursive: true, force: true });
    }
    return layout;
  })();
  layoutBuild.catch(() => (layoutBuild = undefined));
  return layoutBuild;
}

/** Builds the base with buildah (isolated storage) and writes it, index and all, as an OCI layout to `dir`. */
async function buildBusyboxLayout(dir: string): Promise<void> {
  const store = await createIsolatedBuildah();
  try {
    const applets = await listApplets();
    const list = 'farm-base-busybox';
    await store.buildah('manifest', 'create', list);
    for (const platform of BASE_PLATFORMS) {
      const arch = archOf(platform);
      const rootfs = join(store.dir, 'rootfs', arch);
      await stageRootfs(rootfs, arch, applets);
      const container = await store.buildah('from', '--quiet', 'scratch');
      await store.buildah('copy', '--quiet', container, `${rootfs}/`, '/');
      await store.buildah(
        'config',
        '--os',
        'linux',
        '--arch',
        arch,
        '--env',
        'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
        '--cmd',
        '/bin/sh',
        container,
      );
      const image = `farm-base-busybox-${arch}`;
      await store.buildah('commit', '--quiet', '--timestamp', String(SOURCE_DATE_EPOCH), container, image);
      await store.buildah('manifest', 'add', list, `containers-storage:localhost/${image}:latest`);
    }
    await store.buildah('manifest', 'push', '--quiet', '--all', '--format', 'oci', list, `oci:${dir}:latest`);
  } finally {
    await store.remove();
  }
}

function archOf(platform: string): string {
  return platform.split('/')[1] as string;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Applet paths (`bin/sh`, `usr/bin/env`, ...) from the busybox this host can run natively. */
async function listApplets(): Promise<string[]> {
  const hostArch = process.arch === 'x64' ? 'amd64' : process.arch;
  const { stdout } = await run(await busyboxBinary(hostArch), ['--list-full']);
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((path) => path !== '' && path !== 'bin/busybox');
}

async function busyboxBinary(arch: string): Promise<string> {
  const binary = join(BUSYBOX_DIR, arch, 'busybox');
  try {
    await access(binary);
  } catch {
    throw new Error(`${binary} is missing: run scripts/setup.sh first`);
  }
  return binary;
}

async function stageRootfs(rootfs: string, arch: string, applets: string[]): Promise<void> {
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await copyFile(await busyboxBinary(arch), join(rootfs, 'bin', 'busybox'));
  await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
  for (const dir of new Set(applets.map((applet) => dirname(applet)))) {
    await mkdir(join(rootfs, dir), { recursive: true });
  }
  await Promise.all(applets.map((applet) => symlink('/bin/busybox', join(rootfs, applet))));
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await writeFile(
    join(rootfs, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  await mkdir(join(rootfs, 'root'), { mode: 0o700 });
  await mkdir(join(rootfs, 'tmp'));
  await chmod(join(rootfs, 'tmp'), 0o1777);
}

/** The digest the registry has for the base's tag, if it answers without a token dance. */
async function registryDigest(registryHost: string, auth: RegistryAuth | undefined): Promise<string | undefined> {
  const [name, tag] = BASE_REPOSITORY.split(':') as [string, string];
  const headers: Record<string, string> = { Accept: 'application/vnd.oci.image.index.v1+json' };
  if (auth) headers.Authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
  try {
    const response = await fetch(`http://${registryHost}/v2/${name}/manifests/${tag}`, { method: 'HEAD', headers });
    return response.ok ? (response.headers.get('docker-content-digest') ?? undefined) : undefined;
  } catch {
    return undefined;
  }
}
