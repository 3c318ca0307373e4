// `gatehouse dev` as a developer uses it: trust the development CA, then curl and Chromium
// accept https://localhost with no flags at all; sign in on the dev login page; untrust, and
// both refuse the certificate again. Changes this machine's trust stores (run as root, as the
// test command does) and always undoes them.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, statSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { GATEHOUSE, SHOTS, eventually, freePort, launch } from './helpers.mjs';


let dir, echo, seen = [], dev, devLog = '', base, adminPort;



const certs = (verb) => execFileSync(GATEHOUSE, ['certs', verb, '--certs', dir], { encoding: 'utf8' });
const curl = (url) => spawnSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', url], { encoding: 'utf8' });


before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-dev-'));
  echo = http.createServer((req, res) => {
    seen.push({ url: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><title>my app</title><h1>My app</h1><pre id=echo>${JSON.stringify(req.headers, null, 2).replace(/</g, '&lt;')}</pre>`);
  });
  await new Promise((r) => echo.listen(0, '127.0.0.1', r));
  const port = await freePort();
  adminPort = await freePort();
  base = `https://localhost:${port}`;
  dev = spawn(GATEHOUSE, ['dev', '--upstream', `127.0.0.1:${echo.address().port}`, '--port', String(port),
    '--admin-port', String(adminPort), '--certs', dir, '--user', 'alice=admin,dev', '--user', 'bob'],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  dev.stderr.on('data', (d) => { devLog += d; });
  await eventually('gatehouse dev is ready', async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok, () => devLog);
});

after(async () => {
  // Never leave this machine trusting a test CA.
  try { certs('untrust'); } catch { /* reported by the test itself */ }
  dev?.kill('SIGTERM');
  echo?.close();
});

test('keys are private to their owner', () => {
  for (const key of ['ca-key.pem', 'localhost-key.pem', 'issuer-key.pem', 'session-secret']) {
    assert.equal(statSync(path.join(dir, key)).mode & 0o777, 0o600, key);
  }
});

test('after trust, curl and Chromium accept the certificate; after untrust, they refuse it', async () => {
  assert.notEqual(curl(`${base}/`).status, 0, 'curl must refuse an untrusted CA before trust');

  const trusted = certs('trust');
  assert.match(trusted, /system store: added/);
  assert.match(trusted, /NSS database: added/);
  assert.match(trusted, /NODE_EXTRA_CA_CERTS=/);
  assert.match(certs('trust'), /system store: already trusted/, 'trust is idempotent');

  const ok = curl(`${base}/`);
  assert.equal(ok.status, 0, `curl without -k failed: ${ok.stderr}`);
  assert.equal(ok.stdout, '401', 'curl reached Gatehouse (an API call without a session gets 401)');

  let browser = await launch();
  let page = await (await browser.newContext()).newPage();
  const response = await page.goto(`${base}/`);
  assert.equal(new URL(page.url()).pathname, '/oauth2/start', 'a navigation is sent to the dev login page');
  assert.equal(response.status(), 200);
  assert.match(await page.textContent('h1'), /Sign in \(development\)/);
  await page.screenshot({ path: path.join(SHOTS, 'dev-1-login-page-trusted.png'), fullPage: true });

  // The dev login page signs alice in, and the app sees the roles she was given.
  await page.click('a:has-text("alice")');
  await page.waitForURL(`${base}/`);
  await page.screenshot({ path: path.join(SHOTS, 'dev-2-app-as-alice.png'), fullPage: true });
  const headers = JSON.parse(await page.textContent('#echo'));
  assert.equal(headers['x-user-id'], 'alice');
  assert.equal(headers['x-user-roles'], 'admin,dev');

  // A typed user with typed roles works too.
  const other = await (await browser.newContext()).newPage();
  await other.goto(`${base}/typed`);
  await other.fill('input[name=user]', 'carol');
  await other.fill('input[name=roles]', 'ops, billing');
  await other.click('button[type=submit]');
  await other.waitForURL(`${base}/typed`);
  const typed = JSON.parse(await other.textContent('#echo'));
  assert.equal(typed['x-user-id'], 'carol');
  assert.equal(typed['x-user-roles'], 'ops,billing');
  await browser.close();

  const untrusted = certs('untrust');
  assert.match(untrusted, /system store: removed/);
  assert.match(untrusted, /NSS database: removed/);
  assert.match(certs('untrust'), /system store: was not there/, 'untrust is idempotent');

  const refused = curl(`${base}/`);
  assert.equal(refused.status, 60, `curl should refuse the certificate again: ${refused.stdout} ${refused.stderr}`);
  browser = await launch();
  page = await (await browser.newContext()).newPage();
  await assert.rejects(page.goto(`${base}/`), /ERR_CERT_AUTHORITY_INVALID/);
  await browser.close();
});

test('when the app is down, the browser gets a page naming its address that retries', async () => {
  const browser = await launch();
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await page.click('a:has-text("bob")');
  await page.waitForURL(`${base}/`);
  const appPort = echo.address().port;
  await new Promise((r) => { echo.close(r); echo.closeAllConnections(); });
  const response = await page.goto(`${base}/somewhere`);
  assert.equal(response.status(), 502);
  const text = await page.textContent('body');
  assert.ok(text.includes(`http://127.0.0.1:${appPort}`), text);
  assert.equal(await page.getAttribute('meta[http-equiv=refresh]', 'content'), '2');
  await page.screenshot({ path: path.join(SHOTS, 'dev-3-app-down.png'), fullPage: true });
  await browser.close();
});
