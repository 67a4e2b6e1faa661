import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The checkout's root, found from this file whether it runs as TypeScript or from dist/. */
export function repositoryRoot(from = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'buildfarm') return dir;
    if (dirname(dir) === dir) throw new Error(`no buildfarm checkout above ${from}`);
  }
}
