// Shared by the end-to-end tests: free ports, bounded waiting, and Debian's Chromium.

import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const GATEHOUSE = process.env.GATEHOUSE ?? path.join(ROOT, 'target/debug/gatehouse');
export const SHOTS = path.join(ROOT, 'target/e2e');

/** A port the OS just gave us (for addresses that must be known before a server starts). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Polls `check` until it returns true, for at most `ms`; `context()` explains a failure. */
export async function eventually(what, check, context = () => '', ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`never happened: ${what}\n${context()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Debian's Chromium, headless, with the background traffic this closed network refuses off. */
export function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/** The app behind Gatehouse in the login tests: echoes path and headers, as an HTML page
 *  (`#echo`) to a browser and as JSON otherwise. Resolves once it listens on a free port. */
export async function startEcho(onRequest = () => {}) {
  const echo = http.createServer((req, res) => {
    onRequest(req);
    const body = JSON.stringify({ path: req.url, headers: req.headers }, null, 2);
    const html = (req.headers.accept ?? '').includes('text/html');
    res.writeHead(200, { 'content-type': html ? 'text/html' : 'application/json' });
    res.end(html ? `<!doctype html><title>echo</title><pre id=echo>${body.replace(/</g, '&lt;')}</pre>` : body);
  });
  await new Promise((r) => echo.listen(0, '127.0.0.1', r));
  return echo;
}

/** An https request from node trusting `ca`; resolves to { status, headers, body }. `cookie`
 *  is the value of Gatehouse's session cookie. */
export function httpsRequest(url, { ca, cookie, headers = {}, method = 'GET', body } = {}) {
  return new Promise((resolve, reject) => {
    const all = { accept: 'application/json', ...headers };
    if (cookie) all.cookie = `__Host-gatehouse=${cookie}`;
    const req = https.request(url, { method, headers: all, ca }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** At oidc-provider's development login (its `devInteractions`): sign in as `user` with any
 *  password and consent. Waits for the IdP at `idpOrigin` first; returns after the consent. */
export async function idpSignIn(page, idpOrigin, user) {
  await page.waitForURL((url) => url.origin === idpOrigin);
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', 'any password');
  await page.click('button[type=submit]');
  await page.waitForSelector('button:has-text("Continue")');
  await page.click('button:has-text("Continue")');
}

/** The start of a Gatehouse config for the e2e tests: HTTPS and admin ports, the dev
 *  certificate made in `certs/` beside the config, the upstream, and `policies/`. */
export function configHead({ port, adminPort, upstreamPort }) {
  return `version: 1
listen:
  https: 127.0.0.1:${port}
  admin: 127.0.0.1:${adminPort}
tls:
  certificates:
    - cert_file: certs/localhost.pem
      key_file: certs/localhost-key.pem
upstream:
  url: http://127.0.0.1:${upstreamPort}
policies: policies
`;
}
