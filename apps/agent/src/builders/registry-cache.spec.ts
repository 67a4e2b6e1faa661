import type { PlatformBuildJob } from '@farm/queue';
import { budArguments, registriesConf } from './buildah-job';
import { cachePushFailure, cacheRepository, jobImageName } from './registry-cache';

const job: PlatformBuildJob = {
  buildId: '0f6c3c9e-2b1a-4c55-9d2e-5b8f1d2e3a4b',
  platform: 'linux/amd64',
  repo: 'https://example.com/app.git',
  commit: 'a'.repeat(40),
  dockerfile: 'Dockerfile',
  context: '.',
  buildArgs: {},
  labels: {},
  pushTo: { registry: '127.0.0.1:5000', repository: 'app' },
};
const paths = { platform: 'linux/amd64', dockerfile: '/src/Dockerfile', contextDir: '/src' };

describe('cacheRepository', () => {
  it('gives every platform a repository of its own under the prefix', () => {
    const setting = { registry: 'registry.example.com', repository: 'buildfarm/cache' };
    expect(cacheRepository(setting, { os: 'linux', architecture: 'amd64' })).toBe(
      'registry.example.com/buildfarm/cache/buildcache-linux-amd64',
    );
    expect(cacheRepository(setting, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(
      'registry.example.com/buildfarm/cache/buildcache-linux-arm-v7',
    );
  });
});

describe('jobImageName', () => {
  it('names the job and platform, and hashes a build id that is no valid image name', () => {
    expect(jobImageName(job, { os: 'linux', architecture: 'arm64' })).toBe(
      `localhost/farm-job/${job.buildId}-linux-arm64`,
    );
    const odd = jobImageName({ ...job, buildId: 'Build_1' }, { os: 'linux', architecture: 'amd64' });
    expect(odd).toMatch(/^localhost\/farm-job\/[0-9a-f]{32}-linux-amd64$/);
    expect(jobImageName({ ...job, buildId: 'build_1' }, { os: 'linux', architecture: 'amd64' })).not.toBe(odd);
  });
});

describe('budArguments with the registry cache', () => {
  const repo = '127.0.0.1:5000/cache/buildcache-linux-amd64';

  it('without the cache: straight into the layout, no cache flags', () => {
    const args = budArguments(job, { ...paths, tag: 'oci:/work/oci:image' });
    expect(args).toContain('oci:/work/oci:image');
    expect(args).not.toContain('--cache-from');
    expect(args).not.toContain('--cache-to');
  });

  it('reads and writes the cache, tagging in storage', () => {
    const args = budArguments(job, { ...paths, tag: 'localhost/farm-job/x', cacheRepository: repo });
    expect(args.join(' ')).toContain(`--tag localhost/farm-job/x`);
    expect(args.join(' ')).toContain(`--cache-from ${repo} --cache-to ${repo}`);
    expect(args).toContain('--layers');
  });

  it('a no-cache job does not read the cache but refreshes it', () => {
    const args = budArguments(
      { ...job, noCache: true },
      { ...paths, tag: 'localhost/farm-job/x', cacheRepository: repo },
    );
    expect(args).toContain('--no-cache');
    expect(args).not.toContain('--cache-from');
    expect(args.join(' ')).toContain(`--cache-to ${repo}`);
  });
});

describe('registriesConf', () => {
  it('reaches a loopback cache registry over plain HTTP, any other only when configured insecure', () => {
    expect(registriesConf('FROM alpine\n', [], '127.0.0.1:5000')).toContain('location = "127.0.0.1:5000"');
    expect(registriesConf('FROM alpine\n', [], 'localhost:5000')).toContain('location = "localhost:5000"');
    expect(registriesConf('FROM alpine\n', [], 'registry.example.com')).not.toContain('registry.example.com');
    expect(registriesConf('FROM alpine\n', ['registry.local:5000'], 'registry.local:5000')).toContain(
      'location = "registry.local:5000"',
    );
  });
});

describe('cachePushFailure', () => {
  const lastLines = (lines: string[]) =>
    Object.assign(new Error('buildah bud exited with code 1'), { lastLines: lines });

  it("recognises buildah's failed cache push and keeps its cause", () => {
    const error = lastLines([
      '--> Pushing cache 127.0.0.1:1/cache/buildcache-linux-amd64:3735f7',
      'Error: failed pushing cache to {{{"127.0.0.1:1" "cache/buildcache-linux-amd64"} "3735f7"}}: pinging container registry 127.0.0.1:1: connection refused',
      'a late stdout line',
    ]);
    expect(cachePushFailure(error)).toBe('pinging container registry 127.0.0.1:1: connection refused');
  });

  it('leaves every other failure alone, also a RUN step that prints the same words', () => {
    expect(cachePushFailure(lastLines(['Error: building at STEP "RUN exit 3": exit status 3']))).toBeUndefined();
    expect(
      cachePushFailure(
        lastLines([
          'Error: failed pushing cache to somewhere: from a RUN',
          'Error: building at STEP "RUN x": exit status 1',
        ]),
      ),
    ).toBeUndefined();
    expect(cachePushFailure(new Error('no lines'))).toBeUndefined();
    expect(cachePushFailure(undefined)).toBeUndefined();
  });
});
