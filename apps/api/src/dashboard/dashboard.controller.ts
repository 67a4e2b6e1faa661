import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { Controller, Get, Param, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { ApiError } from '../common/api-error';
import { Public } from '../common/auth.guard';

/** Where the assets live in the checkout; SWC compiles only .ts, so dist/ has no copy of them. */
const PUBLIC_DIR = join('apps', 'api', 'src', 'dashboard', 'public');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * The dashboard's static files, found by walking up from this module: it runs both from
 * `apps/api/src/dashboard` and from `dist/apps/api/src/dashboard`, and the checkout (or the
 * farm's image, which copies it whole) always has the sources.
 */
export function dashboardDir(from = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, PUBLIC_DIR);
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`no ${PUBLIC_DIR}/index.html above ${from}`);
  }
}

interface Asset {
  type: string;
  body: Buffer;
}

/** Read once at start: the set of servable names is fixed, so no request path reaches the disk. */
function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type) assets.set(name, { type, body: readFileSync(join(dir, name)) });
  }
  return assets;
}

/**
 * The web dashboard: public static files at `/` and `/dashboard/<file>`. The page itself holds
 * no data; it calls REST v1 with the token the user signs in with.
 */
@Controller()
@Public()
@ApiExcludeController()
export class DashboardController {
  private readonly assets = loadAssets(dashboardDir());

  @Get()
  index(@Res() response: Response): void {
    this.send('index.html', response);
  }

  @Get('dashboard/:file')
  file(@Param('file') file: string, @Res() response: Response): void {
    this.send(file, response);
  }

  private send(name: string, response: Response): void {
    const asset = this.assets.get(name);
    if (!asset) throw new ApiError('not_found', `no dashboard file ${name}`);
    response
      .set({
        'Content-Type': asset.type,
        // Data only ever reaches the DOM as text, and only this origin's scripts run.
        'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        'X-Content-Type-Options': 'nosniff',
        'Cache-Control': 'no-cache',
      })
      .send(asset.body);
  }
}
