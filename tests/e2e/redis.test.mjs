// Sessions in Redis across two Gatehouse replicas, end to end: panva's oidc-provider (with
// back-channel logout and rotating refresh tokens) is the IdP, Debian's redis-server holds the
// sessions (with a password), two Gatehouse processes built from this repo share it, and
// headless Chromium signs in on one of them.
//
// Cookies are not scoped by port, so the browser's cookie for https://localhost reaches both
// replicas (A and B listen on two ports of localhost) as it would two pods behind one Service.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign as signData } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import Provider from 'oidc-provider';
import { GATEHOUSE, SHOTS, configHead, eventually, freePort, httpsRequest, idpSignIn, launch, startEcho } from './helpers.mjs';

const CLIENT_SECRET = 'e2e-client-secret-with-enough-length';
const REDIS_PASSWORD = 'e2e redis password';
const COOKIE = '__Host-gatehouse';

let dir, ca, idpServer, idpUrl, echo, redis, redisPort, browser;
const replicas = {};
const refreshGrants = [];
const backchannelSent = [];
let signBearer;

function request(base, pathname, options = {}) {
  return httpsRequest(`${base}${pathname}`, { ca, ...options });
}

/** The fetch oidc-provider uses for back-channel logout: node's https, trusting the dev CA. */
function providerFetch(url, options) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: options.method, headers: Object.fromEntries(new Headers(options.headers)), ca }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        backchannelSent.push({ url: String(url), status: res.statusCode });
        const empty = res.statusCode === 204 || res.statusCode === 304;
        resolve(new Response(empty ? null : Buffer.concat(chunks), { status: res.statusCode }));
      });
    });
    req.on('error', reject);
    req.end(options.body ? String(options.body) : undefined);
  });
}

function startRedis() {
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--requirepass', REDIS_PASSWORD],
  { stdio: 'ignore' });
}

async function stopRedis() {
  const exited = new Promise((r) => redis.once('exit', r));
  redis.kill('SIGKILL');
  await exited;
}

function startGatehouse(name, port, adminPort) {
  const config = path.join(dir, `${name}.yaml`);
  writeFileSync(config, `${configHead({ port, adminPort, upstreamPort: echo.address().port })}issuers:
  - issuer: https://robots.example
    audiences: [e2e-api]
    jwks_file: robots.jwks
login:
  issuer: ${idpUrl}
  client_id: gatehouse
  client_secret: { file: client-secret }
  redirect_url: ${replicas.a.base}/oauth2/callback
  scopes: [openid, email, roles]
  pass_access_token: true
session:
  secrets: [{ file: session-secret }]
  store: redis
  redis:
    url: redis://127.0.0.1:${redisPort}
    password: { file: redis-password }
    timeout: 300ms
log:
  format: json
`);
  const replica = { base: `https://localhost:${port}`, admin: `http://127.0.0.1:${adminPort}`, log: '' };
  replica.process = spawn(GATEHOUSE, ['run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  replica.process.stderr.on('data', (d) => { replica.log += d; });
  return replica;
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-e2e-redis-'));
  const [portA, adminA, portB, adminB] = [await freePort(), await freePort(), await freePort(), await freePort()];
  redisPort = await freePort();
  replicas.a = { base: `https://localhost:${portA}` };
  execFileSync(GATEHOUSE, ['certs', 'dev', '--out', path.join(dir, 'certs')]);
  ca = readFileSync(path.join(dir, 'certs', 'ca.pem'));

  idpServer = http.createServer();
  await new Promise((r) => idpServer.listen(0, '127.0.0.1', r));
  idpUrl = `http://127.0.0.1:${idpServer.address().port}`;
  const provider = new Provider(idpUrl, {
    clients: [{
      client_id: 'gatehouse',
      client_secret: CLIENT_SECRET,
      redirect_uris: [`${replicas.a.base}/oauth2/callback`],
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'],
      backchannel_logout_uri: `${replicas.a.base}/oauth2/backchannel_logout`,
      backchannel_logout_session_required: true,
    }],
    claims: { openid: ['sub'], email: ['email'], roles: ['roles'] },
    scopes: ['openid', 'email', 'roles', 'offline_access'],
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    cookies: { keys: ['e2e-only-cookie-signing-key'] },
    // Short access tokens, so that sessions need refreshing within the test; every refresh
    // token is issued and rotated (a second use of one is invalid_grant).
    ttl: { AccessToken: 2, IdToken: 3600, RefreshToken: 3600, Grant: 3600, Session: 3600, Interaction: 600 },
    issueRefreshToken: async () => true,
    rotateRefreshToken: () => true,
    fetch: providerFetch,
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
    },
    async findAccount(ctx, id) {
      return { accountId: id, async claims() { return { sub: id, email: `${id}@example.com`, roles: ['admin'] }; } };
    },
  });
  provider.on('grant.success', (ctx) => { if (ctx.oidc.params.grant_type === 'refresh_token') refreshGrants.push('ok'); });
  provider.on('grant.error', (ctx) => { if (ctx.oidc.params?.grant_type === 'refresh_token') refreshGrants.push('error'); });
  idpServer.on('request', provider.callback());

  echo = await startEcho();

  // A bearer issuer of our own (a local key), for the routes that must not need Redis.
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(dir, 'robots.jwks'), JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'r1', alg: 'ES256', use: 'sig' }] }));
  signBearer = () => {
    const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const input = `${b64({ alg: 'ES256', kid: 'r1', typ: 'JWT' })}.${b64({ iss: 'https://robots.example', aud: 'e2e-api', sub: 'robot', iat: now, exp: now + 600 })}`;
    const signature = signData('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  };

  writeFileSync(path.join(dir, 'client-secret'), CLIENT_SECRET);
  writeFileSync(path.join(dir, 'session-secret'), 'e2e-session-secret-0123456789abcdefghij');
  writeFileSync(path.join(dir, 'redis-password'), `${REDIS_PASSWORD}\n`);
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'policies', 'e2e.yaml'), `version: 1
routes:
  - name: robots
    path: /robots/**
    auth: bearer
  - name: app
    path: /**
    auth: session
`);
  startRedis();
  replicas.a = startGatehouse('a', portA, adminA);
  replicas.b = startGatehouse('b', portB, adminB);
  for (const replica of Object.values(replicas)) {
    await eventually('gatehouse is ready', async () => (await fetch(`${replica.admin}/readyz`)).ok, () => replica.log);
  }
  browser = await launch();
});

after(async () => {
  await browser?.close();
  for (const replica of Object.values(replicas)) replica.process?.kill('SIGTERM');
  redis?.kill('SIGKILL');
  idpServer?.close();
  echo?.close();
});

async function signIn(page, prefix) {
  await page.goto(`${replicas.a.base}/app/home`);
  await idpSignIn(page, idpUrl, 'alice');
  await page.waitForURL((url) => url.origin === replicas.a.base);
  await page.screenshot({ path: path.join(SHOTS, `${prefix}-signed-in.png`), fullPage: true });
}

async function sessionCookie(context) {
  return (await context.cookies(replicas.a.base)).find((c) => c.name === COOKIE)?.value;
}

test('one session on two replicas: refreshed once, signed out everywhere, ended by the IdP', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await signIn(page, 'redis-1');
  const cookie = await sessionCookie(context);
  assert.match(cookie, /^[0-9a-f]{32}\.[0-9a-f]{32}$/, 'the cookie is a ticket');
  const onA = JSON.parse(await page.textContent('#echo'));
  assert.equal(onA.headers['x-user-id'], 'alice');
  assert.ok(onA.headers['x-forwarded-access-token'], 'the app gets the access token');

  // The same cookie on replica B.
  await page.goto(`${replicas.b.base}/app/on-b`);
  assert.equal(JSON.parse(await page.textContent('#echo')).headers['x-user-id'], 'alice');

  // The access token (2 s) expires; twenty requests at once, half on each replica, make one
  // refresh at an IdP that rotates refresh tokens, and all succeed.
  await new Promise((r) => setTimeout(r, 3000));
  const before = refreshGrants.length;
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) =>
    request(i % 2 ? replicas.b.base : replicas.a.base, `/app/burst/${i}`, { cookie })));
  assert.deepEqual(answers.map((a) => a.status), Array(20).fill(200), answers.map((a) => a.body).join('\n'));
  assert.deepEqual(refreshGrants.slice(before), ['ok'], 'exactly one refresh reached the IdP');
  const tokens = new Set(answers.map((a) => JSON.parse(a.body).headers['x-forwarded-access-token']));
  assert.equal(tokens.size, 1, 'every request carries the one refreshed access token');
  assert.ok(!tokens.has(onA.headers['x-forwarded-access-token']), 'it is a new token');

  // Sign out on B: the copied cookie is dead on A at once.
  await page.goto(`${replicas.b.base}/oauth2/sign_out`);
  await page.waitForURL((url) => url.origin === idpUrl);
  for (const base of [replicas.a.base, replicas.b.base]) {
    const after = await request(base, '/oauth2/userinfo', { cookie });
    assert.equal(after.status, 401, `${base}: ${after.body}`);
  }
  await page.click('button[name=logout]');
  await context.close();
});

test('the IdP ends a session by back-channel logout, on both replicas', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await signIn(page, 'redis-2');
  const cookie = await sessionCookie(context);
  assert.equal((await request(replicas.b.base, '/app/x', { cookie })).status, 200);

  // Logging out at the IdP itself (not through Gatehouse): the IdP calls the back-channel.
  const sent = backchannelSent.length;
  await page.goto(`${idpUrl}/session/end`);
  await page.click('button[name=logout]');
  await eventually('the IdP sent a back-channel logout', () => backchannelSent.length > sent);
  assert.deepEqual(backchannelSent.slice(sent).map((s) => s.status), [200]);
  for (const base of [replicas.a.base, replicas.b.base]) {
    const after = await request(base, '/app/x', { cookie });
    assert.equal(after.status, 401, `${base}: ${after.body}`);
  }
  await context.close();
});

test('Redis stopped: session routes answer 503, bearer routes 200, and service resumes', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await signIn(page, 'redis-3');
  const cookie = await sessionCookie(context);
  const robot = { authorization: `Bearer ${signBearer()}` };
  assert.equal((await request(replicas.a.base, '/robots/x', { headers: robot })).status, 200);

  await stopRedis();
  for (const base of [replicas.a.base, replicas.b.base]) {
    const api = await request(base, '/app/x', { cookie });
    assert.equal(api.status, 503, api.body);
    assert.equal(JSON.parse(api.body).error, 'session_store_unavailable');
    assert.equal(api.headers['set-cookie'], undefined, 'the cookie is not cleared');
    assert.equal((await request(base, '/robots/x', { headers: robot })).status, 200);
  }
  const response = await page.goto(`${replicas.a.base}/app/while-down`);
  assert.equal(response.status(), 503);
  assert.equal(new URL(page.url()).origin, replicas.a.base, 'no redirect to the login');
  await page.screenshot({ path: path.join(SHOTS, 'redis-3-store-down.png'), fullPage: true });
  await eventually('/readyz reports Redis', async () => {
    const ready = await fetch(`${replicas.a.admin}/readyz`);
    return ready.status === 503 && (await ready.text()).includes('redis');
  });

  startRedis();
  await eventually('the session works again', async () => (await request(replicas.a.base, '/app/back', { cookie })).status === 200);
  await eventually('on B too', async () => (await request(replicas.b.base, '/app/back', { cookie })).status === 200);
  await page.goto(`${replicas.b.base}/app/back`);
  assert.equal(JSON.parse(await page.textContent('#echo')).headers['x-user-id'], 'alice');
  await context.close();
});
