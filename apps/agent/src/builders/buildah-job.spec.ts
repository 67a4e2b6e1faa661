import type { PlatformBuildJob } from '@farm/queue';
import { budArguments, imageLabels, mountSources } from './buildah-job';

const job: PlatformBuildJob = {
  buildId: 'b1',
  platform: 'linux/amd64',
  repo: 'https://git.example.com/app.git',
  commit: 'c'.repeat(40),
  dockerfile: 'Dockerfile',
  context: '.',
  buildArgs: {},
  labels: { team: 'web' },
  pushTo: { registry: 'registry.example.com', repository: 'team/app' },
};

describe('imageLabels', () => {
  it('names the commit and repository, and adds the request labels, which win', () => {
    expect(imageLabels(job)).toEqual({
      'org.opencontainers.image.revision': job.commit,
      'org.opencontainers.image.source': job.repo,
      team: 'web',
    });
    const own = { ...job, labels: { 'org.opencontainers.image.source': 'https://example.com/mirror' } };
    expect(imageLabels(own)['org.opencontainers.image.source']).toBe('https://example.com/mirror');
  });

  it('names no commit or repository for an uploaded context', () => {
    expect(imageLabels({ ...job, repo: '', commit: '', labels: {} })).toEqual({});
  });

  it('are not build steps: bud gets no --label', () => {
    const args = budArguments(job, { platform: 'linux/amd64', dockerfile: 'D', contextDir: '.', tag: 'oci:/l:image' });
    expect(args).not.toContain('--label');
  });
});

describe('mountSources', () => {
  it("lists the repositories of the push registry that the Dockerfile's stages start from", () => {
    const dockerfile = [
      'FROM 127.0.0.1:5000/base/busybox:latest AS build',
      'RUN make',
      'from --platform=$BUILDPLATFORM 127.0.0.1:5000/tools/go@sha256:' + 'a'.repeat(64),
      'FROM build',
      'FROM ${BASE}',
      'FROM other.example:5000/base/busybox',
      'FROM alpine',
      'FROM 127.0.0.1:5000/base/busybox:1.36',
    ].join('\n');
    expect(mountSources(dockerfile, '127.0.0.1:5000')).toEqual(['base/busybox', 'tools/go']);
  });

  it('finds nothing to mount for images of other registries', () => {
    expect(mountSources('FROM alpine:3\nFROM ghcr.io/acme/base\n', '127.0.0.1:5000')).toEqual([]);
  });
});
