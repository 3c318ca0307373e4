// `gatehouse demo` as a new user meets it: the root page, the admin link, the dev login, a 403
// for bob and the admin echo for alice, and the inspector at /.gatehouse/ showing both
// decisions live with their route and reason. Header values with markup are shown as text.
// Under `gatehouse run` there is no inspector: /.gatehouse/ is the app's (here: its 404).
// Screenshots go to target/e2e/inspector-*.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { GATEHOUSE, SHOTS, eventually, freePort, launch } from './helpers.mjs';

let dir, demo, demoLog = '', base;
const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, `inspector-${name}.png`), fullPage: true });

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-demo-'));
  const port = await freePort();
  const admin = await freePort();
  base = `https://localhost:${port}`;
  demo = spawn(GATEHOUSE, ['demo', '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${admin}`,
    '--certs', path.join(dir, 'certs'), '--policies', path.join(dir, 'none')], { stdio: ['ignore', 'ignore', 'pipe'] });
  demo.stderr.on('data', (d) => { demoLog += d; });
  await eventually('the demo is ready', async () => (await fetch(`http://127.0.0.1:${admin}/readyz`)).ok, () => demoLog);
});

after(() => { demo?.kill('SIGTERM'); });

test('sign in from the root page, see the 403 and the admin echo, and both decisions in the inspector', async () => {
  const browser = await launch();
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const inspector = await context.newPage();
    await inspector.goto(`${base}/.gatehouse/`);
    await inspector.waitForSelector('#status:text-is("live")');

    const page = await context.newPage();
    await page.goto(`${base}/`);
    assert.match(await page.textContent('.verdict'), /This route is public/);
    await page.waitForSelector('#user:has-text("anonymous")');
    await shot(page, '1-demo-home');

    // The admin link goes to the dev login; bob signs in and is refused with a page.
    await page.click('a[href="/admin/"]');
    await page.waitForURL((url) => url.pathname === '/oauth2/start');
    assert.match(await page.textContent('h1'), /Sign in \(development\)/);
    await shot(page, '2-dev-login');
    const refused = page.waitForResponse((r) => new URL(r.url()).pathname === '/admin/');
    await page.click('a:has-text("bob")');
    assert.equal((await refused).status(), 403);
    assert.match(await page.textContent('h1'), /You do not have access/);
    await shot(page, '3-bob-forbidden');

    // The inspector shows it live (no reload of its page): route with its place in the
    // policy, and why. The wait is a generous bound for a loaded CI machine, not a speed
    // check: events arrive over SSE as they happen.
    const bobRow = inspector.locator('tr.entry', { hasText: '/admin/' }).filter({ hasText: 'bob' }).filter({ hasText: 'forbidden' });
    await bobRow.first().waitFor({ timeout: 15000 });
    const bobText = await bobRow.first().textContent();
    assert.match(bobText, /admin \(.*demo\.yaml:\d+\)/);
    assert.match(bobText, /needs role/);

    // Sign out, sign in as alice (with a header carrying markup), and get the admin echo.
    await page.click('a:has-text("sign out")');
    await context.setExtraHTTPHeaders({ 'x-note': '<script>window.pwned=1</script>' });
    await page.goto(`${base}/admin/`);
    await page.waitForURL((url) => url.pathname === '/oauth2/start');
    await page.click('a:has-text("alice")');
    await page.waitForURL(`${base}/admin/`);
    assert.match(await page.textContent('.verdict'), /as alice/);
    assert.equal(await page.textContent('tr.added:has(th:text-is("x-user-id")) td'), 'alice');
    assert.equal(await page.textContent('tr:has(th:text-is("x-note")) td'), '<script>window.pwned=1</script>');
    assert.equal(await page.evaluate(() => window.pwned), undefined);
    await shot(page, '4-alice-admin-echo');

    const aliceRow = inspector.locator('tr.entry', { hasText: '/admin/' }).filter({ hasText: 'alice' }).filter({ hasText: 'allow' });
    await aliceRow.first().waitFor({ timeout: 15000 });
    assert.match(await aliceRow.first().textContent(), /admin \(.*demo\.yaml:\d+\)/);

    // A row opens its explanation, identity, headers and timings; markup stays text.
    await aliceRow.first().click();
    const detail = await inspector.textContent('#detail');
    assert.match(detail, /policy explain/);
    assert.match(detail, /route {5}admin \(/);
    assert.match(detail, /decision {2}allow/);
    assert.match(detail, /headers added/);
    assert.ok(detail.includes('<script>window.pwned=1</script>'), detail);
    for (const cookie of await context.cookies()) assert.ok(!detail.includes(cookie.value), `cookie ${cookie.name} shown`);
    assert.match(detail, /=\[redacted\]/);
    assert.equal(await inspector.evaluate(() => window.pwned), undefined);
    await shot(inspector, '5-inspector');
  } finally {
    await browser.close();
  }
});

test('under gatehouse run, /.gatehouse/ is an ordinary path (here the app answers 404)', async () => {
  const app = http.createServer((req, res) => { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('app: not found'); });
  await new Promise((r) => app.listen(0, '127.0.0.1', r));
  const policies = path.join(dir, 'open');
  mkdirSync(policies, { recursive: true });
  writeFileSync(path.join(policies, 'open.yaml'), 'version: 1\nroutes:\n  - name: everything\n    path: /**\n    auth: none\n');
  const port = await freePort();
  const admin = await freePort();
  const certs = path.join(dir, 'certs');
  const config = path.join(dir, 'run.yaml');
  writeFileSync(config, `version: 1
listen:
  https: 127.0.0.1:${port}
  admin: 127.0.0.1:${admin}
tls:
  certificates:
    - cert_file: ${certs}/localhost.pem
      key_file: ${certs}/localhost-key.pem
upstream:
  url: http://127.0.0.1:${app.address().port}
policies: ${policies}
`);
  let log = '';
  const run = spawn(GATEHOUSE, ['run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  run.stderr.on('data', (d) => { log += d; });
  const browser = await launch();
  try {
    await eventually('gatehouse run is ready', async () => (await fetch(`http://127.0.0.1:${admin}/readyz`)).ok, () => log);
    const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
    const response = await page.goto(`https://localhost:${port}/.gatehouse/`);
    assert.equal(response.status(), 404);
    assert.equal(await page.textContent('body'), 'app: not found');
  } finally {
    await browser.close();
    run.kill('SIGTERM');
    app.close();
  }
});
