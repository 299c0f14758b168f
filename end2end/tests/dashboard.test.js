// End-to-end: the real server (started by .ci/test with --demo), Debian's Chromium,
// driven by playwright-core under node's test runner.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { chromium } = require('playwright-core');

const BASE = process.env.RELEASE_URL || 'http://127.0.0.1:3000';
let browser;
const consoleProblems = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--no-first-run'],
  });
});
after(async () => { await browser?.close(); });

async function open(path) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') consoleProblems.push(`${path}: ${m.text()}`); });
  page.on('pageerror', (e) => consoleProblems.push(`${path}: ${e.message}`));
  await page.goto(BASE + path);
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30000 });
  return page;
}

const visibleRows = (page) => page.locator('table.grid tbody tr:not([hidden])');

test('the grid shows every demo app with flags and a summary', async () => {
  const page = await open('/');
  assert.equal(await page.locator('table.grid tbody tr').count(), 12);
  const summary = await page.locator('.summary').innerText();
  assert.match(summary, /of 12 applications need attention/);
  const frontend = page.locator('tr[data-app="frontend"]');
  assert.match(await frontend.innerText(), /manual deployment: production/);
  assert.match(await page.locator('tr[data-app="publisher"]').innerText(), /smoke tests failed/);
  assert.match(await page.locator('tr[data-app="router"]').innerText(), /in progress/);
  await page.close();
});

test('typing in the filter narrows the rows at once, and "/" focuses it', async () => {
  const page = await open('/');
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), 'filter');
  await page.keyboard.type('publisher');
  await page.waitForFunction(() => document.querySelectorAll('table.grid tbody tr:not([hidden])').length === 1);
  assert.equal(await visibleRows(page).first().getAttribute('data-app'), 'publisher');
  // Teams match too: three apps belong to #frontend.
  await page.fill('#filter', '#frontend');
  await page.waitForFunction(() => document.querySelectorAll('table.grid tbody tr:not([hidden])').length === 3);
  await page.fill('#filter', '');
  await page.check('input[name="attention"]');
  await page.waitForFunction(() => document.querySelectorAll('table.grid tbody tr:not([hidden])').length < 12);
  const shown = await visibleRows(page).evaluateAll((rows) => rows.map((r) => r.dataset.app));
  assert.ok(shown.includes('frontend') && shown.includes('publisher'), shown.join(','));
  assert.ok(!shown.includes('content-store'), 'an app in order is hidden');
  await page.close();
});

test('navigating to an application shows its history and timeline', async () => {
  const page = await open('/');
  await page.click('tr[data-app="publisher"] th a');
  await page.waitForSelector('h1:has-text("Publisher")');
  assert.equal(new URL(page.url()).pathname, '/applications/publisher');
  const text = await page.locator('main').innerText();
  assert.match(text, /the latest deployment to staging failed at smoke tests/);
  assert.ok(await page.locator('.timeline li').count() > 3);
  assert.ok(await page.locator('a:has-text("View workflow")').count() > 0);
  await page.close();
});

test('the activity page lists deployments and filters by environment', async () => {
  const page = await open('/activity');
  assert.ok(await page.locator('table.activity tbody tr').count() > 10);
  await page.click('nav.tabs a:has-text("production")');
  await page.waitForURL(/environment=production/);
  await page.waitForFunction(() => [...document.querySelectorAll('table.activity tbody tr td:nth-child(3)')].every((td) => td.textContent === 'production'));
  await page.close();
});

test('pages hydrate without console errors or warnings', () => {
  assert.deepEqual(consoleProblems, []);
});
