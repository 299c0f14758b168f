// What every browser test shares: where the server is, the development sign-in's key
// (.ci/test starts the server with both), Debian's Chromium, and signing in.
const { chromium } = require('playwright-core');

const BASE = process.env.RELEASE_URL || 'http://127.0.0.1:3000';
const KEY = process.env.RELEASE_DEV_SIGN_IN_KEY || '';

/// Debian's Chromium (Playwright's own download does not work here), quiet.
function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--no-first-run'],
  });
}

/// A new context of `browser` signed in through the development sign-in, as `login` with
/// `role` (both optional: the demo user, a viewer); `options` go to newContext.
async function signedIn(browser, { login, role } = {}, options = {}) {
  const ctx = await browser.newContext(options);
  const page = await ctx.newPage();
  await page.goto(BASE + '/auth/sign-in?key=' + encodeURIComponent(KEY));
  if (login) await page.fill('#login', login);
  if (role) await page.check(`input[value="${role}"]`);
  await page.click('button:has-text("Sign in as a demo user")');
  await page.waitForURL(BASE + '/');
  await page.close();
  return ctx;
}

module.exports = { BASE, KEY, launch, signedIn };
