import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { repositoryRoot } from '../../scripts/lib/repository-root';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * The dashboard in headless Chromium (Debian's, driven by playwright-core) against a real
 * farm: sign in, watch a two-platform build go green with live logs, see the agent pools and
 * the queue depth. Screenshots land in test-results/dashboard/.
 */

jest.setTimeout(240_000);

const SCREENSHOTS = join(repositoryRoot(), 'test-results', 'dashboard');

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;
let userDataDir: string;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({
    Dockerfile: `FROM ${base}\nRUN uname -m > /arch\nCOPY hello.txt /hello.txt\n`,
    'hello.txt': 'hello from the dashboard test\n',
  });
  farm = await startFarm({
    databaseUrl: database.url,
    agents: [{ name: 'native-amd64' }, { platform: 'linux/arm64', emulated: true, name: 'qemu-arm64' }],
  });
  userDataDir = await mkdtemp(join(tmpdir(), 'farm-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await mkdir(SCREENSHOTS, { recursive: true });
});

afterAll(async () => {
  await context?.close();
  await farm?.stop();
  await Promise.all([
    registry?.stop(),
    database?.drop(),
    repo?.remove(),
    userDataDir && rm(userDataDir, { recursive: true, force: true }),
  ]);
});

/** Waits until the element's text contains `text` (the page refreshes every 2 s). */
async function waitForText(selector: string, text: string, timeout = 180_000): Promise<void> {
  const deadline = Date.now() + timeout;
  let actual: string | null = null;
  while (Date.now() < deadline) {
    actual = await page
      .locator(selector)
      .first()
      .textContent({ timeout: 1_000 })
      .catch(() => null);
    if (actual?.includes(text)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${selector} never showed "${text}" within ${timeout} ms; it shows ${JSON.stringify(actual)}`);
}

test('serves the dashboard publicly and keeps the data behind the token', async () => {
  const index = await fetch(`${farm.apiUrl}/`);
  expect(index.status).toBe(200);
  expect(index.headers.get('content-type')).toContain('text/html');
  expect(index.headers.get('content-security-policy')).toContain("default-src 'self'");
  expect((await fetch(`${farm.apiUrl}/dashboard/app.js`)).headers.get('content-type')).toContain('javascript');
  expect((await fetch(`${farm.apiUrl}/dashboard/..%2Fdashboard.controller.ts`)).status).toBe(404);
  expect((await fetch(`${farm.apiUrl}/v1/builds`)).status).toBe(401);

  await page.goto(`${farm.apiUrl}/`);
  await page.getByLabel('API token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitForText('#sign-in-error', 'That token was refused.', 10_000);
});

test('a two-platform build goes green on its page with live logs, agents and queue depth', async () => {
  await page.goto(`${farm.apiUrl}/`);
  await page.getByLabel('API token').fill(farm.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForSelector('#builds');
  expect(await page.locator('#sign-in').isVisible()).toBe(false);

  const tag = `${registry.host}/team/dash:1.0`;
  const submitted = await farm.request('POST', '/v1/builds', {
    repo: repo.url,
    ref: 'main',
    platforms: ['linux/amd64', 'linux/arm64'],
    tags: [tag],
  });
  expect(submitted.status).toBe(202);
  const id: string = submitted.body.id;

  // The list picks the new build up by itself (2 s refresh).
  await page.waitForSelector(`#builds tr[data-build="${id}"]`, { timeout: 10_000 });
  await page.click(`#builds tr[data-build="${id}"] a`);
  await page.waitForSelector('#platforms tr[data-platform="linux/arm64"]');

  for (const platform of ['linux/amd64', 'linux/arm64']) {
    await waitForText(`#platforms tr[data-platform="${platform}"] td:nth-child(2)`, 'succeeded');
  }
  await waitForText('#build-summary', 'succeeded');
  const build = await farm.waitForBuild(id);
  expect(build.status).toBe('succeeded');
  await waitForText('#index-digest', build.digest);
  await waitForText('#build-summary', tag);
  await waitForText('#platforms tr[data-platform="linux/amd64"]', 'native-amd64');
  await waitForText('#platforms tr[data-platform="linux/arm64"]', 'qemu-arm64');
  await waitForText('#platforms tr[data-platform="linux/arm64"] td:nth-child(4)', 'yes');
  await waitForText('#platforms tr[data-platform="linux/amd64"] td:nth-child(4)', 'no');
  // Both log panes were fed by the SSE stream.
  await waitForText('pre[data-platform="linux/amd64"]', 'uname -m', 10_000);
  await waitForText('pre[data-platform="linux/arm64"]', 'uname -m', 10_000);
  // A succeeded build can be neither canceled nor retried.
  expect(await page.getByRole('button', { name: 'Cancel' }).isDisabled()).toBe(true);
  expect(await page.getByRole('button', { name: 'Retry' }).isDisabled()).toBe(true);
  await page.screenshot({ path: join(SCREENSHOTS, 'build.png'), fullPage: true });

  await page.goto(`${farm.apiUrl}/#/builds`);
  await waitForText(`#builds tr[data-build="${id}"]`, 'succeeded');
  await page.screenshot({ path: join(SCREENSHOTS, 'builds.png'), fullPage: true });
  await page.selectOption('#status-filter', 'failed');
  await waitForText('#builds tbody', 'No builds.', 10_000);
  await page.selectOption('#status-filter', 'succeeded');
  await page.waitForSelector(`#builds tr[data-build="${id}"]`, { timeout: 10_000 });

  await page.goto(`${farm.apiUrl}/#/agents`);
  await waitForText('section[data-pool="linux/amd64"]', 'native-amd64');
  await waitForText('section[data-pool="linux/arm64"]', 'qemu-arm64');
  await waitForText('section[data-pool="linux/arm64"] tr[data-agent="qemu-arm64"]', 'online');
  expect(await page.locator('section[data-pool="linux/amd64"] tr[data-agent="qemu-arm64"]').count()).toBe(0);
  await page.screenshot({ path: join(SCREENSHOTS, 'agents.png'), fullPage: true });

  await page.goto(`${farm.apiUrl}/#/queue`);
  await page.waitForSelector('#queue tr[data-platform="linux/arm64"]');
  await page.screenshot({ path: join(SCREENSHOTS, 'queue.png'), fullPage: true });

  expect(pageErrors).toEqual([]);
});

test('the build page cancels a waiting build, then offers to retry it', async () => {
  // No agent serves linux/s390x: the build waits until it is canceled.
  const submitted = await farm.request('POST', '/v1/builds', {
    repo: repo.url,
    ref: 'main',
    platforms: ['linux/s390x'],
    tags: [`${registry.host}/team/dash:waiting`],
  });
  expect(submitted.status).toBe(202);
  const id: string = submitted.body.id;
  await page.goto(`${farm.apiUrl}/#/builds/${id}`);
  const cancel = page.getByRole('button', { name: 'Cancel' });
  const retry = page.getByRole('button', { name: 'Retry' });
  await waitForText('#build-summary', 'queued', 10_000);
  await page.waitForSelector('#cancel-build:not([disabled])');
  expect(await retry.isDisabled()).toBe(true);

  await cancel.click();
  await waitForText('#build-summary', 'canceled', 10_000);
  await waitForText('#platforms tr[data-platform="linux/s390x"] td:nth-child(2)', 'canceled', 10_000);
  expect((await farm.request('GET', `/v1/builds/${id}`)).body.status).toBe('canceled');
  expect(await cancel.isDisabled()).toBe(true);
  await page.waitForSelector('#retry-build:not([disabled])');
  await page.screenshot({ path: join(SCREENSHOTS, 'build-canceled.png'), fullPage: true });

  // Retried, it waits again (still no agent) and can be canceled again.
  await retry.click();
  await waitForText('#build-summary', 'Retries', 10_000);
  expect((await farm.request('GET', `/v1/builds/${id}`)).body).toMatchObject({ status: 'queued', retries: 1 });
  await page.waitForSelector('#cancel-build:not([disabled])');
  expect(await page.getByRole('button', { name: 'Retry' }).isDisabled()).toBe(true);
  expect(pageErrors).toEqual([]);
});
