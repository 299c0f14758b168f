// End-to-end: a deployer deploys in demo mode and watches the simulated pipeline live:
// requested, stages advancing, a smoke-test failure, Resubmit, success, and the promotion
// to staging appearing on the grid, all without a reload.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { BASE, launch, signedIn } = require('../support');

let browser;
let context;

before(async () => {
  browser = await launch();
  context = await signedIn(browser, { login: 'e2e-deployer', role: 'deployer' });
});
after(async () => { await browser?.close(); });

test('deploy, watch it live, resubmit a flaky smoke test, see it on the grid and never promoted', async () => {
  const grid = await context.newPage();
  await grid.goto(BASE + '/');
  await grid.waitForSelector('body[data-hydrated="true"]');
  const staging = grid.locator('tr:has(a[href="/applications/content-store"]) td').nth(1);
  assert.doesNotMatch(await staging.innerText(), /v9999/);

  const page = await context.newPage();
  await page.goto(BASE + '/applications/content-store');
  await page.waitForSelector('body[data-hydrated="true"]');
  assert.match(await page.locator('main').innerText(), /Demo mode: deploys here drive a simulated pipeline/);
  await page.selectOption('select[name="environment"]', 'integration');
  await page.fill('input[name="git_ref"]', 'v9999');
  await page.click('.deploy-form button[type="submit"]');
  await page.waitForSelector('text=Simulated deploy of v9999 to integration started.');

  const item = page.locator('.deployment:has(a.version:text-is("v9999"))').first();
  // The timeline advances without a reload, then the (simulated) flaky smoke test fails.
  await item.locator('.timeline li').first().waitFor({ timeout: 15000 });
  await item.locator('.status:has-text("smoke tests failed")').waitFor({ timeout: 20000 });
  await item.locator('button:has-text("Resubmit")').click();
  await page.waitForSelector('text=/Resubmitted as post-sync-content-store-/');
  await item.locator('.status:has-text("succeeded")').waitFor({ timeout: 20000 });
  assert.match(await item.innerText(), /passed on resubmit/);

  // The deployment reaches the grid in the other tab, live; as in the pipeline our users
  // run, a manual deployment is never promoted to the next environment.
  await grid.waitForFunction(() => {
    const cells = document.querySelectorAll('tr:has(a[href="/applications/content-store"]) td');
    return cells.length > 1 && cells[0].innerText.includes('v9999');
  }, null, { timeout: 20000 });
  await page.waitForTimeout(1500);
  assert.doesNotMatch(await staging.innerText(), /v9999/);
  await page.close();
  await grid.close();
});

test('a manual-deployment flag offers its promotion, and the train page lists what waits', async () => {
  const page = await context.newPage();
  await page.goto(BASE + '/train');
  await page.waitForSelector('body[data-hydrated="true"]');
  const production = page.locator('section:has(h2:text-is("To production"))');
  assert.match(await production.innerText(), /Frontend/);
  assert.equal(await production.locator('input[type="checkbox"][value="frontend"]').isChecked(), true);
  // A train to staging: each app's deployment then shows in the result, live.
  const staging = page.locator('section:has(h2:text-is("To staging"))');
  await staging.locator('button[type="submit"]').click();
  await page.waitForSelector('table.train-result tr.train-dispatched');
  await page.waitForFunction(() => {
    const now = document.querySelector('table.train-result tr.train-dispatched td.train-now');
    return now && /v\d+ (in progress|succeeded|failed|requested)/.test(now.textContent);
  }, null, { timeout: 15000 });

  await page.goto(BASE + '/applications/frontend');
  await page.waitForSelector('body[data-hydrated="true"]');
  const promote = page.locator('#promote-production');
  assert.match(await promote.locator('button[type="submit"]').innerText(), /^Deploy .+ to production$/);
  // Production needs the confirmation, as Deploy does.
  await promote.locator('button[type="submit"]').click();
  await page.waitForSelector('text=/needs an explicit confirmation/');
  await promote.locator('input[name="confirm"]').check();
  await promote.locator('button[type="submit"]').click();
  await page.waitForSelector('text=/Simulated deploy of .+ to production started\\./');
  await page.close();
});

test('a drifted app shows the drift flag; rolling it back freezes its promotion and the rollback shows live', async () => {
  const page = await context.newPage();
  await page.goto(BASE + '/');
  await page.waitForSelector('body[data-hydrated="true"]');
  assert.match(await page.locator('tr:has(a[href="/applications/static"])').innerText(), /drift: production/);

  await page.goto(BASE + '/applications/static');
  await page.waitForSelector('body[data-hydrated="true"]');
  assert.match(await page.locator('main').innerText(), /Argo CD says production runs v2104, not v2105/);
  const card = page.locator('.env-card:has(h3:has-text("production"))');
  // The version to roll back to: the newest earlier one that succeeded there (the
  // demo's made-up history decides which).
  const target = (await card.locator('details.rollback summary').innerText()).match(/Roll back to (\S+)/)[1];
  await card.locator('details.rollback summary').click();
  await card.locator('input[name="reason"]').fill('errors since v2105');
  await card.locator('input[name="confirm"]').check();
  await card.locator('.rollback-form button[type="submit"]').click();
  await page.waitForSelector('text=/Promotion of static into and out of production is frozen \\(rollback\\)/');
  // The rollback's deployment is production's current one now, without a reload.
  await page.waitForFunction((target) => {
    const c = [...document.querySelectorAll('.env-card')].find((e) => e.querySelector('h3')?.textContent.includes('production'));
    return c && c.innerText.includes(target);
  }, target, { timeout: 15000 });
  await page.close();
});
