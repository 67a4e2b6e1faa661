import { mountSources } from './buildah-job';

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
