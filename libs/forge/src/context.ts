import { type Platform, normalizePlatform, parsePlatform } from '@farm/domain';

/** Status context of the published image index: success once it is pushed under every tag. */
export const MANIFEST_STATUS_CONTEXT = 'buildfarm/manifest';

/**
 * Status context of one platform's build, from its normalized name:
 * `linux/arm64` (or `linux/aarch64`, `linux/arm64/v8`) -> `buildfarm/linux-arm64`,
 * `linux/arm/v7` -> `buildfarm/linux-arm-v7`.
 *
 * @throws InvalidPlatformError for a platform the farm does not build.
 */
export function platformStatusContext(platform: Platform | string): string {
  const p = typeof platform === 'string' ? parsePlatform(platform) : normalizePlatform(platform);
  return `buildfarm/${[p.os, p.architecture, ...(p.variant ? [p.variant] : [])].join('-')}`;
}
