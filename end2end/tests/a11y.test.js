// Accessibility: axe-core on every page (as a viewer, a deployer and an admin, and signed
// out), zero serious or critical violations; and the main controls reachable and usable
// from the keyboard alone.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { BASE, launch, signedIn } = require('../support');

const AXE = require.resolve('axe-core/axe.min.js');
let browser;

before(async () => {
  browser = await launch();
});
after(async () => { await browser?.close(); });

/// A context signed in with `role` (none: signed out). The pages' CSP admits only
/// scripts with the response's nonce: the test context bypasses it to inject axe.
async function as(role) {
  if (!role) return browser.newContext({ bypassCSP: true });
  return signedIn(browser, { login: `a11y-${role}`, role }, { bypassCSP: true });
}

async function axe(ctx, path, { hydrated = true } = {}) {
  const page = await ctx.newPage();
  await page.goto(BASE + path);
  if (hydrated) await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30000 });
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  }));
  await page.close();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${path}: ${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('\n    ')}`);
}

test('every page has no serious or critical axe violations', async () => {
  const problems = [];
  const out = await as(null);
  problems.push(...await axe(out, '/auth/sign-in', { hydrated: false }));
  await out.close();
  const viewer = await as('viewer');
  for (const path of ['/', '/activity', '/applications/publisher', '/applications/frontend', '/audit', '/train', '/stats', '/nowhere']) {
    problems.push(...await axe(viewer, path));
  }
  await viewer.close();
  const deployer = await as('deployer');
  for (const path of ['/applications/publisher', '/train']) {
    problems.push(...await axe(deployer, path));
  }
  await deployer.close();
  const admin = await as('admin');
  for (const path of ['/admin/users', '/applications/static']) {
    problems.push(...await axe(admin, path));
  }
  await admin.close();
  assert.deepEqual(problems, [], problems.join('\n'));
});

/// Tabs through the page from the top; returns what took focus, as text.
async function tabStops(page, max) {
  const stops = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    stops.push(await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return '';
      const label = el.getAttribute('aria-label') || el.textContent.trim() || el.getAttribute('name') || el.id || '';
      return `${el.tagName.toLowerCase()}:${label.slice(0, 40)}`;
    }));
  }
  return stops;
}

test('the keyboard reaches and works the filter, the navigation and the Deploy form', async () => {
  const ctx = await as('deployer');
  const page = await ctx.newPage();
  await page.goto(BASE + '/');
  await page.waitForSelector('body[data-hydrated="true"]');
  const stops = await tabStops(page, 12);
  for (const want of ['a:Release', 'a:Applications', 'a:Activity', 'a:Stats', 'a:Audit log', 'button:Sign out']) {
    assert.ok(stops.includes(want), `${want} not reached by Tab: ${stops.join(' | ')}`);
  }
  assert.ok(stops.includes('input:q'), `the filter is not reached: ${stops.join(' | ')}`);
  // Enter on a focused link navigates.
  await page.focus('header nav a[href="/stats"]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('h1:has-text("Delivery stats")');
  // The Deploy form: fields and its button reachable, and Enter submits (a preview or a
  // confirmation comes back; nothing needs a mouse).
  await page.goto(BASE + '/applications/publisher');
  await page.waitForSelector('body[data-hydrated="true"]');
  const appStops = await tabStops(page, 60);
  assert.ok(appStops.some((s) => /^select:|^input:/.test(s)), `no form field reached: ${appStops.join(' | ')}`);
  assert.ok(appStops.some((s) => /^button:.*(Deploy|Preview)/.test(s)), `no Deploy button reached: ${appStops.join(' | ')}`);
  await ctx.close();
});
