// Shared by the end-to-end tests: free ports, bounded waiting, and Debian's Chromium.

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
