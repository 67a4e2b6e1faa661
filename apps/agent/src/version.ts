import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The farm's version (package.json), found whether the agent runs from source or from dist/. */
export function farmVersion(from = __dirname): string {
  for (let dir = from; dirname(dir) !== dir; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const { name, version } = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
      if (name === 'buildfarm' && version) return version;
    }
  }
  return 'unknown';
}
