import * as domain from '@farm/domain';

// The public API is what other libs and apps import through the path alias.
describe('@farm/domain', () => {
  test.each([
    'parsePlatform',
    'normalizePlatform',
    'formatPlatform',
    'platformFromMachine',
    'platformQueueName',
    'samePlatform',
    'uniquePlatforms',
    'InvalidPlatformError',
    'parseImageReference',
    'parseTagReference',
    'formatImageReference',
    'isValidTag',
    'InvalidReferenceError',
    'assembleImageIndex',
    'InvalidImageIndexError',
    'sha256Digest',
    'isDigest',
    'digestProblem',
    'canTransition',
    'statusFromPlatforms',
    'isTerminal',
  ])('exports %s', (name) => {
    expect(typeof (domain as Record<string, unknown>)[name]).toBe('function');
  });

  test('exports the media types and status lists', () => {
    expect(domain.OCI_INDEX).toBe('application/vnd.oci.image.index.v1+json');
    expect(domain.OCI_MANIFEST).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(domain.DOCKER_MANIFEST_LIST).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(domain.DOCKER_MANIFEST).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(domain.TERMINAL_BUILD_STATUSES).toEqual(['succeeded', 'failed', 'canceled']);
    expect(domain.BUILD_STATUSES).toHaveLength(5);
    expect(domain.KNOWN_ARCHITECTURES).toContain('riscv64');
  });
});
