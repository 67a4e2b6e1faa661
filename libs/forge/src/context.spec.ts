import { MANIFEST_STATUS_CONTEXT, platformStatusContext } from './context';

describe('platformStatusContext', () => {
  it('names a platform after its normalized form', () => {
    expect(platformStatusContext('linux/arm64')).toBe('buildfarm/linux-arm64');
    expect(platformStatusContext('linux/aarch64')).toBe('buildfarm/linux-arm64');
    expect(platformStatusContext('linux/arm64/v8')).toBe('buildfarm/linux-arm64');
    expect(platformStatusContext('linux/arm/v7')).toBe('buildfarm/linux-arm-v7');
    expect(platformStatusContext({ os: 'linux', architecture: 'amd64' })).toBe('buildfarm/linux-amd64');
  });

  it('refuses a platform the farm does not build', () => {
    expect(() => platformStatusContext('windows/amd64')).toThrow();
  });

  it('keeps the manifest context apart from every platform', () => {
    expect(MANIFEST_STATUS_CONTEXT).toBe('buildfarm/manifest');
  });
});
