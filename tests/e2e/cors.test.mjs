// CORS in a real browser (issue 18, item 5): a page on another origin (https://localhost:PAGE,
// same site, other port) makes a credentialed `fetch` with a custom header to a protected API
// behind `gatehouse dev` (https://localhost:API). The preflight is answered by Gatehouse, the
// signed-in call reaches the app with the identity and its answer is readable, and the
// signed-out call's 401 is readable by the page instead of being a CORS error. Uses the dev
// login page as the session source and ignores certificate errors (no trust store changes).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { GATEHOUSE, SHOTS, eventually, freePort, launch } from './helpers.mjs';

let dir, app, seen = [], dev, devLog = '', page, api, pageOrigin;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-cors-'));
  const apiPort = await freePort();
  const pagePort = await freePort();
  const adminPort = await freePort();
  api = `https://localhost:${apiPort}`;
  pageOrigin = `https://localhost:${pagePort}`;

  // The app: answers with what it saw, and never answers a preflight itself (Gatehouse does).
  app = http.createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ method: req.method, user: req.headers['x-user-id'] ?? null }));
  });
  await new Promise((r) => app.listen(0, '127.0.0.1', r));

  const policies = path.join(dir, 'policies');
  mkdirSync(policies);
  writeFileSync(path.join(policies, 'cors.yaml'), `version: 1
routes:
  - name: api
    path: /api/**
    auth: session
    cors:
      preflight: answer
      allowed_origins: [${pageOrigin}]
      allowed_methods: [PUT]
      allowed_headers: [x-custom, content-type]
      allow_credentials: true
      max_age: 0
  - name: pages
    path: /**
    auth: session
`);
  const certs = path.join(dir, 'certs');
  dev = spawn(GATEHOUSE, ['dev', '--upstream', `127.0.0.1:${app.address().port}`, '--port', String(apiPort),
    '--admin-port', String(adminPort), '--certs', certs, '--policies', policies, '--user', 'alice=reader'],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  dev.stderr.on('data', (d) => { devLog += d; });
  await eventually('gatehouse dev is ready', async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok, () => devLog);

  // The page's own origin, served with the dev leaf (it covers localhost).
  page = https.createServer({
    cert: readFileSync(path.join(certs, 'localhost.pem')),
    key: readFileSync(path.join(certs, 'localhost-key.pem')),
  }, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>spa</title><h1>Another origin</h1>');
  });
  await new Promise((r) => page.listen(pagePort, '127.0.0.1', r));
});

after(async () => {
  dev?.kill('SIGTERM');
  app?.close();
  page?.close();
});

/** The page's credentialed fetch with a custom header (a preflight is needed for both). */
const call = (tab) => tab.evaluate(async (url) => {
  try {
    const response = await fetch(url, {
      method: 'PUT',
      credentials: 'include',
      headers: { 'X-Custom': 'yes', 'Content-Type': 'application/json' },
      body: '{}',
    });
    return { status: response.status, body: await response.text() };
  } catch (error) {
    return { error: String(error) };
  }
}, `${api}/api/orders`);

test('a page on another origin reads the signed-in answer and the signed-out 401', async () => {
  const browser = await launch();
  try {
    // Signed out: the preflight passes, the call's 401 is readable (no CORS error).
    const anonymous = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
    await anonymous.goto(`${pageOrigin}/`);
    const out = await call(anonymous);
    assert.equal(out.error, undefined, `the 401 must be readable: ${JSON.stringify(out)}\n${devLog}`);
    assert.equal(out.status, 401);
    assert.equal(JSON.parse(out.body).error, 'unauthenticated');
    assert.equal(seen.filter((s) => s.url.startsWith('/api/')).length, 0, 'nothing reached the app');

    // Signed in on the API's origin through the dev login page, then the page calls it.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const tab = await context.newPage();
    await tab.goto(`${api}/`);
    await tab.click('a:has-text("alice")');
    await tab.waitForURL(`${api}/`);
    seen = [];
    await tab.goto(`${pageOrigin}/`);
    const signedIn = await call(tab);
    assert.equal(signedIn.error, undefined, `the call must succeed: ${JSON.stringify(signedIn)}\n${devLog}`);
    assert.equal(signedIn.status, 200);
    assert.deepEqual(JSON.parse(signedIn.body), { method: 'PUT', user: 'alice' });
    // The preflight was answered by Gatehouse: the app saw only the real call.
    const calls = seen.filter((s) => s.url.startsWith('/api/'));
    assert.deepEqual(calls.map((s) => s.method), ['PUT']);
    assert.equal(calls[0].headers['x-custom'], 'yes');
    await tab.screenshot({ path: path.join(SHOTS, 'cors-1-page-on-other-origin.png') });
  } finally {
    await browser.close();
  }
});

test('an OPTIONS that is not a preflight needs a credential', () => {
  const out = spawnSync('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'OPTIONS',
    '-H', `Origin: ${pageOrigin}`, `${api}/api/orders`], { encoding: 'utf8' });
  assert.equal(out.stdout, '401', out.stderr);
  const preflight = spawnSync('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'OPTIONS',
    '-H', `Origin: ${pageOrigin}`, '-H', 'Access-Control-Request-Method: PUT', `${api}/api/orders`], { encoding: 'utf8' });
  assert.equal(preflight.stdout, '204', preflight.stderr);
});
