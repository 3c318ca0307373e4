// End to end, as a person would do it: panva's oidc-provider is the company's IdP, Gatehouse
// (built from this repo) protects an echo app, and headless Chromium (Debian's package, driven by
// playwright-core) signs in through the IdP's own login form.
//
// Run from the repo root after `cargo build`: `npm --prefix tests/e2e test`. Screenshots of
// every step land in target/e2e/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import Provider from 'oidc-provider';
import { GATEHOUSE, SHOTS, configHead, eventually, freePort, launch } from './helpers.mjs';

const CLIENT_SECRET = 'e2e-client-secret-with-enough-length';
const USERS = { alice: { roles: ['admin'] }, bob: { roles: [] } };

let idp, idpUrl, echo, seen = [], gatehouse, gatehouseLog = '', base, browser;



async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-e2e-'));
  const [ghPort, adminPort] = [await freePort(), await freePort()];
  base = `https://localhost:${ghPort}`;

  // The IdP: oidc-provider with its development login form, users whose roles differ.
  const idpServer = http.createServer();
  await new Promise((r) => idpServer.listen(0, '127.0.0.1', r));
  idpUrl = `http://127.0.0.1:${idpServer.address().port}`;
  const provider = new Provider(idpUrl, {
    clients: [{
      client_id: 'gatehouse',
      client_secret: CLIENT_SECRET,
      redirect_uris: [`${base}/oauth2/callback`],
      post_logout_redirect_uris: [`${base}/public/bye`],
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'],
    }],
    claims: { openid: ['sub'], email: ['email'], roles: ['roles'] },
    scopes: ['openid', 'email', 'roles', 'offline_access'],
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    cookies: { keys: ['e2e-only-cookie-signing-key'] },
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.com`, roles: USERS[id]?.roles ?? [] };
        },
      };
    },
  });
  idpServer.on('request', provider.callback());
  idp = idpServer;

  // The app: echoes what it received, and remembers it.
  echo = http.createServer((req, res) => {
    seen.push({ url: req.url, headers: req.headers });
    const body = JSON.stringify({ path: req.url, headers: req.headers }, null, 2);
    if ((req.headers.accept ?? '').includes('text/html')) {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><title>echo</title><h1>The app</h1><pre id=echo>${body.replace(/</g, '&lt;')}</pre>`);
    } else {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    }
  });
  await new Promise((r) => echo.listen(0, '127.0.0.1', r));

  // Gatehouse, from this repo.
  execFileSync(GATEHOUSE, ['certs', 'dev', '--out', path.join(dir, 'certs')]);
  writeFileSync(path.join(dir, 'client-secret'), CLIENT_SECRET);
  writeFileSync(path.join(dir, 'session-secret'), 'e2e-session-secret-0123456789abcdefghij');
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'policies', 'e2e.yaml'), `version: 1
routes:
  - name: public
    path: /public/**
    auth: none
  - name: admin
    path: /admin/**
    auth: session
    require:
      roles: { any_of: [admin] }
  - name: app
    path: /**
    auth: session
`);
  writeFileSync(path.join(dir, 'gatehouse.yaml'), `${configHead({ port: ghPort, adminPort, upstreamPort: echo.address().port })}login:
  issuer: ${idpUrl}
  client_id: gatehouse
  client_secret: { file: client-secret }
  redirect_url: ${base}/oauth2/callback
  scopes: [openid, email, roles]
  post_logout_redirect_url: ${base}/public/bye
session:
  secrets: [{ file: session-secret }]
log:
  format: json
`);
  gatehouse = spawn(GATEHOUSE, ['run', '--config', path.join(dir, 'gatehouse.yaml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  gatehouse.stderr.on('data', (d) => { gatehouseLog += d; });
  await eventually('gatehouse is ready', async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok, () => gatehouseLog);

  browser = await launch();
});

after(async () => {
  await browser?.close();
  gatehouse?.kill('SIGTERM');
  idp?.close();
  echo?.close();
});

/** Signs in at the IdP's own form (login + consent), starting from a protected page. */
async function signIn(page, user, target, prefix) {
  await page.goto(`${base}${target}`);
  await page.waitForURL((url) => url.origin === idpUrl);
  await shot(page, `${prefix}-1-idp-login`);
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', 'any password');
  await page.click('button[type=submit]');
  await page.waitForSelector('button:has-text("Continue")');
  await shot(page, `${prefix}-2-idp-consent`);
  await page.click('button:has-text("Continue")');
  await page.waitForURL((url) => url.origin === base);
}

test('alice signs in, the app sees who she is, and signing out ends both sessions', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await signIn(page, 'alice', '/app/page?x=1', 'alice');
  assert.equal(page.url(), `${base}/app/page?x=1`, 'the original URL is restored');
  await shot(page, 'alice-3-app');
  const echoed = JSON.parse(await page.textContent('#echo'));
  assert.equal(echoed.headers['x-user-id'], 'alice');
  assert.equal(echoed.headers['x-user-roles'], 'admin');
  assert.ok(!(echoed.headers.cookie ?? '').includes('__Host-gatehouse'), 'our cookie reached the app');

  const cookies = await context.cookies(base);
  const session = cookies.find((c) => c.name === '__Host-gatehouse');
  assert.ok(session, `no session cookie in ${JSON.stringify(cookies.map((c) => c.name))}`);
  assert.equal(session.secure, true);
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  assert.equal(session.path, '/');
  assert.ok(!cookies.some((c) => c.name.includes('_flow_')), 'the flow cookie is gone after login');

  // A reload is answered from the session: nothing goes to the IdP.
  const toIdp = [];
  page.on('request', (r) => { if (r.url().startsWith(idpUrl)) toIdp.push(r.url()); });
  await page.reload();
  assert.deepEqual(toIdp, []);
  const apiStatus = await page.evaluate(() => fetch('/api/data', { headers: { accept: 'application/json' } }).then((r) => r.status));
  assert.equal(apiStatus, 200);

  // Sign out: Gatehouse clears the session and sends the browser to the IdP's logout.
  await page.goto(`${base}/oauth2/sign_out`);
  await page.waitForURL((url) => url.origin === idpUrl);
  await shot(page, 'alice-4-idp-logout');
  await page.click('button[name=logout]');
  await page.waitForURL(`${base}/public/bye`);
  await shot(page, 'alice-5-signed-out');
  assert.ok(!(await context.cookies(base)).some((c) => c.name.startsWith('__Host-gatehouse')));

  // An XHR now gets 401, never a redirect to a login page.
  const after = await page.evaluate(() => fetch('/api/data').then((r) => ({ status: r.status, redirected: r.redirected })));
  assert.deepEqual(after, { status: 401, redirected: false });

  // The IdP session is over too: the next visit shows the IdP's login form again.
  await page.goto(`${base}/app/again`);
  await page.waitForURL((url) => url.origin === idpUrl);
  assert.ok(await page.isVisible('input[name=login]'), 'the IdP still had a session');
  await shot(page, 'alice-6-login-again');
  await context.close();
});

test('bob has no admin role and gets the 403 page on an admin route', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await signIn(page, 'bob', '/admin/settings', 'bob');
  await shot(page, 'bob-3-forbidden');
  const response = await page.goto(`${base}/admin/settings`);
  assert.equal(response.status(), 403);
  const text = await page.textContent('body');
  assert.match(text, /signed in as bob/);
  assert.match(text, /role one of admin/);
  assert.ok(await page.isVisible('a[href="/oauth2/sign_out"]'));
  assert.ok(!seen.some((s) => s.url.startsWith('/admin')), 'bob reached the admin route');
  await context.close();
});
