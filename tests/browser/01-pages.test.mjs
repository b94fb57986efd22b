// The pages around the viewer: first login with the generated admin password and the forced
// change, HTTPS (redirect, Secure cookie, the fingerprint staff compare), search by a Hangul
// prefix, escaping of a hostile patient name, the study page.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import {
  ADMIN_PASSWORD, BASE, MANIFEST, NEW_PASSWORD, PLAIN, changePassword, launch, login, newPage, noProblems, shot,
} from './lib.mjs';

const K = MANIFEST.kim;
const X = MANIFEST.xss;

async function submitLogin(page, user, password) {
  await page.fill('#login input[name=user]', user);
  await page.fill('#login input[name=password]', password);
  await Promise.all([page.waitForLoadState('load'), page.click('#login button[type=submit]')]);
  return new URL(page.url()).pathname;
}

describe('pages', () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  it('first login with the generated password forces a change; then only the new one works', async () => {
    assert.ok(ADMIN_PASSWORD, 'run.sh passes the generated password in PACSBOX_ADMIN_PASSWORD');
    const page = await newPage(browser);
    await page.goto(`${BASE}/search`);
    assert.equal(new URL(page.url()).pathname, '/login', 'no session: redirected to the login page');
    await shot(page, 'login');
    assert.equal(await submitLogin(page, 'admin', 'not-the-password'), '/login');
    assert.ok(await page.locator('.error').isVisible(), 'a wrong password says so');

    assert.equal(await submitLogin(page, 'admin', ADMIN_PASSWORD), '/account/password', 'forced to the password page');
    assert.ok(await page.locator('.notice').isVisible(), 'the page says why');
    await page.goto(`${BASE}/search`);
    assert.equal(new URL(page.url()).pathname, '/account/password', 'no other page before the change');
    await shot(page, 'password-forced');

    await changePassword(page, ADMIN_PASSWORD, NEW_PASSWORD);
    await shot(page, 'password-changed');
    await page.goto(`${BASE}/search`);
    assert.equal(new URL(page.url()).pathname, '/search', 'after the change the pages open');

    await Promise.all([page.waitForLoadState('load'), page.click('header.top form[action="/logout"] button')]);
    await page.goto(`${BASE}/search`);
    assert.equal(new URL(page.url()).pathname, '/login', 'logged out');
    assert.equal(await submitLogin(page, 'admin', ADMIN_PASSWORD), '/login', 'the generated password no longer works');
    await page.goto(`${BASE}/login?next=/search`);
    assert.equal(await submitLogin(page, 'admin', NEW_PASSWORD), '/search', 'the new password works');
    noProblems(page);
    await page.context().close();
  });

  it('over HTTPS: plain HTTP redirects, the session cookie is Secure, the status page shows the served certificate', async () => {
    const page = await newPage(browser);
    const r = await page.request.get(`${PLAIN}/search?name=x`, { maxRedirects: 0 });
    assert.equal(r.status(), 308);
    assert.equal(r.headers().location, `${BASE}/search?name=x`);
    await login(page);
    const session = (await page.context().cookies()).find((c) => c.name === 'pacsbox_session');
    assert.ok(session, 'a session cookie');
    assert.ok(session.secure && session.httpOnly && session.sameSite === 'Strict', JSON.stringify(session));
    const resp = await page.goto(`${BASE}/status`);
    const security = await resp.securityDetails();
    assert.match(security.protocol, /^TLS 1\.[23]$/);
    const shown = (await page.textContent('#tls-fingerprint code')).trim();
    const served = await new Promise((resolve, reject) => {
      const sock = tls.connect(
        { host: '127.0.0.1', port: Number(new URL(BASE).port), rejectUnauthorized: false, servername: 'localhost' },
        () => { resolve(sock.getPeerCertificate().fingerprint256); sock.end(); },
      );
      sock.on('error', reject);
    });
    assert.equal(shown, served, 'the fingerprint on the status page is the certificate served');
    await shot(page, 'status-https');
    noProblems(page);
    await page.context().close();
  });

  it('a Korean patient is found by the Hangul prefix 김', async () => {
    const page = await newPage(browser);
    await login(page);
    await page.goto(`${BASE}/search`);
    await page.fill('#search input[name=name]', '김');
    await Promise.all([page.waitForLoadState('load'), page.click('#search button[type=submit]')]);
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('name'), '김');
    const row = page.locator('#results tbody tr', { hasText: '김민수' });
    assert.equal(await row.count(), 1, await page.textContent('#results'));
    assert.match(await row.textContent(), /BRW-KIM/);
    assert.equal(await page.locator('#results tbody tr', { hasText: 'BRW-XSS' }).count(), 0, 'only matching names');
    await shot(page, 'search-hangul');
    await Promise.all([page.waitForLoadState('load'), row.locator('a').first().click()]);
    assert.equal(new URL(page.url()).pathname, `/study/${K.study}`);
    assert.match(await page.textContent('#patient'), /김민수/);
    noProblems(page);
    await page.context().close();
  });

  it('a patient named <script>alert(1)</script> shows as text, nothing runs', async () => {
    const page = await newPage(browser);
    await login(page);
    await page.goto(`${BASE}/search?id=BRW-XSS`);
    const cell = page.locator('#results tbody tr td').first();
    assert.equal((await cell.textContent()).trim(), X.name);
    assert.equal(await page.locator('#results script').count(), 0, 'no script element in the results');
    await shot(page, 'search-xss');
    await Promise.all([page.waitForLoadState('load'), cell.locator('a').click()]);
    assert.equal((await page.textContent('#patient')).trim(), X.name);
    assert.equal(await page.locator('main script, main b').count(), 0, 'no markup from patient data');
    assert.match(await page.textContent('.series'), /<b>not bold<\/b>/);
    await page.goto(`${BASE}/viewer/${X.study}`);
    await page.waitForFunction(() => window.pacsboxViewer && window.pacsboxViewer.state.source !== 'none');
    assert.match(await page.textContent('#series-select'), /<b>not bold<\/b>/);
    assert.equal((await page.textContent('.vbar a.back')).includes(X.name), true);
    await page.waitForTimeout(300); // a dialog would have fired by now
    noProblems(page);
    await shot(page, 'viewer-xss');
    await page.context().close();
  });

  it('the study page shows details and a loaded thumbnail per series', async () => {
    const page = await newPage(browser);
    await login(page);
    await page.goto(`${BASE}/study/${K.study}`);
    const imgs = page.locator('.series img');
    assert.equal(await imgs.count(), Object.keys(K.series).length);
    for (let i = 0; i < (await imgs.count()); i++) {
      const img = imgs.nth(i);
      await img.scrollIntoViewIfNeeded();
      await page.waitForFunction((el) => el.complete, await img.elementHandle(), { timeout: 20_000 });
      const w = await img.evaluate((el) => el.naturalWidth);
      assert.ok(w > 0, `thumbnail ${i + 1} (${await img.getAttribute('src')}) did not load`);
    }
    assert.match(await page.textContent('main'), /BRW-KIM/);
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'study');
    noProblems(page);
    await page.context().close();
  });

  it('without a session the API answers 401 and pages redirect to the login', async () => {
    const page = await newPage(browser);
    const r = await page.request.get(`${BASE}/api/studies/${K.study}/series`, { maxRedirects: 0 });
    assert.equal(r.status(), 401);
    const v = await page.request.get(`${BASE}/viewer/${K.study}`, { maxRedirects: 0 });
    assert.ok([302, 303, 307].includes(v.status()), `viewer without a session: ${v.status()}`);
    assert.match(v.headers().location || '', /^\/login\?next=/);
    await page.context().close();
  });
});
