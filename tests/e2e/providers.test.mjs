// Two login providers in one Gatehouse, end to end: two instances of panva's oidc-provider
// ("corp" and "partners", both with refresh tokens, RP-initiated and back-channel logout),
// sessions in Debian's redis-server, and headless Chromium choosing between them. Both IdPs
// know an "alice": the same `sub` at two issuers, who must never be taken for each other.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import Provider from 'oidc-provider';
import { GATEHOUSE, SHOTS, configHead, eventually, freePort, httpsRequest, idpSignIn, launch, startEcho } from './helpers.mjs';

const CLIENT_SECRET = 'e2e-client-secret-with-enough-length';
const COOKIE = '__Host-gatehouse';

let dir, ca, echo, redis, gatehouse, base, admin, browser, log = '';
const idps = {};

function request(pathname, options = {}) {
  return httpsRequest(`${base}${pathname}`, { ca, ...options });
}

/** An OpenID provider on its own port that records refreshes and back-channel calls. */
async function startIdp(name, roles) {
  const server = http.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  const idp = { name, url, server, refreshes: 0, backchannel: [] };
  const fetchVia = (target, options) => new Promise((resolve, reject) => {
    const req = https.request(target, { method: options.method, headers: Object.fromEntries(new Headers(options.headers)), ca }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        idp.backchannel.push(res.statusCode);
        const empty = res.statusCode === 204 || res.statusCode === 304;
        resolve(new Response(empty ? null : Buffer.concat(chunks), { status: res.statusCode }));
      });
    });
    req.on('error', reject);
    req.end(options.body ? String(options.body) : undefined);
  });
  const provider = new Provider(url, {
    clients: [{
      client_id: 'gatehouse',
      client_secret: CLIENT_SECRET,
      redirect_uris: [`${base}/oauth2/callback`],
      post_logout_redirect_uris: [`${base}/oauth2/signed_out`],
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'],
      backchannel_logout_uri: `${base}/oauth2/backchannel_logout`,
      backchannel_logout_session_required: true,
    }],
    claims: { openid: ['sub'], email: ['email'], roles: ['roles'] },
    scopes: ['openid', 'email', 'roles', 'offline_access'],
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    cookies: { keys: [`e2e-only-cookie-key-${name}`] },
    ttl: { AccessToken: 2, IdToken: 3600, RefreshToken: 3600, Grant: 3600, Session: 3600, Interaction: 600 },
    issueRefreshToken: async () => true,
    rotateRefreshToken: () => true,
    fetch: fetchVia,
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
    },
    async findAccount(ctx, id) {
      return { accountId: id, async claims() { return { sub: id, email: `${id}@${name}.example`, roles }; } };
    },
  });
  provider.on('grant.success', (ctx) => { if (ctx.oidc.params.grant_type === 'refresh_token') idp.refreshes += 1; });
  server.on('request', provider.callback());
  return idp;
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-e2e-providers-'));
  const [port, adminPort, redisPort] = [await freePort(), await freePort(), await freePort()];
  base = `https://localhost:${port}`;
  admin = `http://127.0.0.1:${adminPort}`;
  execFileSync(GATEHOUSE, ['certs', 'dev', '--out', path.join(dir, 'certs')]);
  ca = readFileSync(path.join(dir, 'certs', 'ca.pem'));
  idps.corp = await startIdp('corp', ['staff']);
  idps.partners = await startIdp('partners', ['partner']);

  echo = await startEcho();

  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  writeFileSync(path.join(dir, 'client-secret'), CLIENT_SECRET);
  writeFileSync(path.join(dir, 'session-secret'), 'e2e-session-secret-0123456789abcdefghij');
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'policies', 'e2e.yaml'), `version: 1
routes:
  - name: staff
    path: /staff/**
    auth: session
    providers: [corp]
  - name: app
    path: /**
    auth: session
`);
  const provider = (idp, title) => `  - name: ${idp.name}
    title: ${title}
    issuer: ${idp.url}
    client_id: gatehouse
    client_secret: { file: client-secret }
    redirect_url: ${base}/oauth2/callback
    post_logout_redirect_url: ${base}/oauth2/signed_out
    scopes: [openid, email, roles]
`;
  const config = path.join(dir, 'gatehouse.yaml');
  writeFileSync(config, `${configHead({ port, adminPort, upstreamPort: echo.address().port })}login:
${provider(idps.corp, 'Example Corp')}${provider(idps.partners, 'Partners')}session:
  secrets: [{ file: session-secret }]
  store: redis
  redis:
    url: redis://127.0.0.1:${redisPort}
log:
  format: json
`);
  gatehouse = spawn(GATEHOUSE, ['run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  gatehouse.stderr.on('data', (d) => { log += d; });
  await eventually('gatehouse is ready', async () => (await fetch(`${admin}/readyz`)).ok, () => log);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  gatehouse?.kill('SIGTERM');
  redis?.kill('SIGKILL');
  for (const idp of Object.values(idps)) idp.server.close();
  echo?.close();
});

/** At the IdP's dev login: sign in as `user`, consent, and come back. */
async function signInAt(page, idp, user) {
  await idpSignIn(page, idp.url, user);
  await page.waitForURL((url) => url.origin === base);
}

async function sessionCookie(context) {
  return (await context.cookies(base)).find((c) => c.name === COOKIE)?.value;
}

function echoed(text) {
  return JSON.parse(text).headers;
}

test('choose a provider, sign in, refresh there, and sign out there', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(`${base}/app/home`);
  assert.equal(new URL(page.url()).pathname, '/oauth2/start');
  await page.screenshot({ path: path.join(SHOTS, 'providers-1-chooser.png'), fullPage: true });
  await page.click('a:has-text("Sign in with Partners")');
  await signInAt(page, idps.partners, 'alice');
  assert.equal(new URL(page.url()).pathname, '/app/home');
  const headers = echoed(await page.textContent('#echo'));
  assert.equal(headers['x-user-id'], 'alice');
  assert.equal(headers['x-user-roles'], 'partner');
  const info = JSON.parse(await (await context.request.get(`${base}/oauth2/userinfo`)).text());
  assert.equal(info.issuer, idps.partners.url);

  // The access token (2 s) expires: the refresh goes to partners, not to corp.
  await new Promise((r) => setTimeout(r, 3000));
  const cookie = await sessionCookie(context);
  const before = { corp: idps.corp.refreshes, partners: idps.partners.refreshes };
  const later = await request('/app/later', { cookie });
  assert.equal(later.status, 200, later.body);
  assert.deepEqual({ corp: idps.corp.refreshes - before.corp, partners: idps.partners.refreshes - before.partners }, { corp: 0, partners: 1 });

  // A route for corp people refuses a partners session with a page that says why.
  const refused = await page.goto(`${base}/staff/reports`);
  assert.equal(refused.status(), 403);
  assert.match(await page.textContent('body'), /a sign-in with corp/);

  // Sign-out ends the session here and at partners' end-session endpoint.
  await page.goto(`${base}/oauth2/sign_out`);
  await page.waitForURL((url) => url.origin === idps.partners.url);
  await page.click('button[name=logout]');
  await page.waitForURL((url) => url.origin === base && url.pathname === '/oauth2/signed_out');
  assert.equal((await request('/app/x', { cookie })).status, 401, 'the session is over');
  await context.close();
});

test('a route for one provider sends a new visitor straight to it', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(`${base}/staff/reports`);
  await signInAt(page, idps.corp, 'alice');
  assert.equal(new URL(page.url()).pathname, '/staff/reports');
  assert.equal(echoed(await page.textContent('#echo'))['x-user-roles'], 'staff');
  await context.close();
});

test("one provider's back-channel logout ends only its own sessions of that user", async () => {
  const corpContext = await browser.newContext({ ignoreHTTPSErrors: true });
  const corpPage = await corpContext.newPage();
  await corpPage.goto(`${base}/oauth2/start?provider=corp&rd=/app/corp`);
  await signInAt(corpPage, idps.corp, 'alice');
  const corpCookie = await sessionCookie(corpContext);

  const partnersContext = await browser.newContext({ ignoreHTTPSErrors: true });
  const partnersPage = await partnersContext.newPage();
  await partnersPage.goto(`${base}/oauth2/start?provider=partners&rd=/app/partners`);
  await signInAt(partnersPage, idps.partners, 'alice');
  const partnersCookie = await sessionCookie(partnersContext);
  assert.equal((await request('/app/x', { cookie: corpCookie })).status, 200);
  assert.equal((await request('/app/x', { cookie: partnersCookie })).status, 200);

  // alice logs out at partners itself; partners calls the back-channel.
  const sent = idps.partners.backchannel.length;
  await partnersPage.goto(`${idps.partners.url}/session/end`);
  await partnersPage.click('button[name=logout]');
  await eventually('partners sent a back-channel logout', () => idps.partners.backchannel.length > sent, () => log);
  assert.deepEqual(idps.partners.backchannel.slice(sent), [200]);
  assert.equal((await request('/app/x', { cookie: partnersCookie })).status, 401, 'the partners session ended');
  const corp = await request('/app/x', { cookie: corpCookie });
  assert.equal(corp.status, 200, `the corp session of the same sub lives on: ${corp.body}`);
  assert.equal(echoed(corp.body)['x-user-roles'], 'staff');
  await corpContext.close();
  await partnersContext.close();
});
