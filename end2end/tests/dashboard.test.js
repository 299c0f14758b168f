// End-to-end: the real server (started by .ci/test with --demo), Debian's Chromium,
// driven by playwright-core under node's test runner.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { BASE, KEY, launch, signedIn } = require('../support');

let browser;
let context;
const consoleProblems = [];

before(async () => {
  browser = await launch();
  // Every test but the sign-in one browses as a signed-in viewer.
  context = await signedIn(browser);
});
after(async () => { await browser?.close(); });

async function open(path) {
  const page = await context.newPage();
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
  const frontend = page.locator('tr:has(a[href="/applications/frontend"])');
  assert.match(await frontend.innerText(), /manual deployment: production/);
  assert.match(await page.locator('tr:has(a[href="/applications/publisher"])').innerText(), /smoke tests failed/);
  // Status words of the common cases come from CSS (not in innerText): the class says it.
  assert.equal(await page.locator('tr:has(a[href="/applications/router"]) td.run').count() > 0, true);
  await page.close();
});

test('typing in the filter narrows the rows at once, and "/" focuses it', async () => {
  const page = await open('/');
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), 'filter');
  await page.keyboard.type('publisher');
  await page.waitForFunction(() => document.querySelectorAll('table.grid tbody tr:not([hidden])').length === 1);
  assert.equal(await visibleRows(page).first().locator('th a').getAttribute('href'), '/applications/publisher');
  // Teams match too: three apps belong to #frontend.
  await page.fill('#filter', '#frontend');
  await page.waitForFunction(() => document.querySelectorAll('table.grid tbody tr:not([hidden])').length === 3);
  await page.fill('#filter', '');
  await page.check('input[name="attention"]');
  await page.waitForFunction(() => document.querySelectorAll('table.grid tbody tr:not([hidden])').length < 12);
  const shown = await visibleRows(page).evaluateAll((rows) => rows.map((r) => r.querySelector('th a').getAttribute('href').slice(14)));
  assert.ok(shown.includes('frontend') && shown.includes('publisher'), shown.join(','));
  assert.ok(!shown.includes('content-store'), 'an app in order is hidden');
  await page.close();
});

test('navigating to an application shows its history and timeline', async () => {
  const page = await open('/');
  await page.click('tr:has(a[href="/applications/publisher"]) th a');
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

test('a client-side visit to the grid fetches its rows (and the filter still works)', async () => {
  const page = await open('/activity');
  await page.click('header nav a:has-text("Applications")');
  await page.waitForFunction(() => document.querySelectorAll('table.grid tbody tr').length === 12, null, { timeout: 10000 });
  await page.fill('#filter', 'publisher');
  await page.waitForFunction(() => document.querySelectorAll('table.grid tbody tr:not([hidden])').length === 1);
  await page.close();
});

test('development sign-in, the header, and sign-out', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  // The sign-in page itself logs nothing (its login pattern is a valid /v regex).
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') consoleProblems.push(`sign-in: ${m.text()}`); });
  await page.goto(BASE + '/activity');
  // Signed out: sent to sign in, and brought back afterwards.
  await page.waitForURL(/\/auth\/sign-in\?return_to=%2Factivity/);
  // Without the link's key, the form asks for it.
  await page.fill('#key', KEY);
  await page.fill('#login', 'e2e');
  await page.check('input[value="admin"]');
  await page.click('button:has-text("Sign in as a demo user")');
  await page.waitForURL(BASE + '/activity');
  await page.waitForSelector('body[data-hydrated="true"]');
  const header = await page.locator('.user-menu').innerText();
  assert.match(header, /e2e-admin/);
  assert.match(header, /admin/);
  await page.click('a:has-text("Users")');
  await page.waitForSelector('h1:has-text("Users")');
  assert.match(await page.locator('main').innerText(), /e2e-admin/);
  await page.click('button:has-text("Sign out")');
  await page.waitForURL(/\/auth\/sign-in/);
  await page.goto(BASE + '/');
  await page.waitForURL(/\/auth\/sign-in/);
  await ctx.close();
});

test('pages hydrate without console errors or warnings', () => {
  assert.deepEqual(consoleProblems, []);
});
