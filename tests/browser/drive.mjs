// Drives the official Anthropic SDK in headless Chromium against a proxy on another origin.
//
//   node drive.mjs '<json>'   with {"pagePort", "proxyUrl", "token", "model", "chromium", "runs": [
//                                    {"name", "scenario": "create"|"stream"|"throttled",
//                                     "auth": "apiKey"|"authToken", "prompt",
//                                     "baseURL" (optional: another proxy than proxyUrl)}]}
//
// Bundles page/scenarios.mjs with the SDK (esbuild: the SDK's ESM build imports packages by
// bare name, which a browser cannot resolve), serves it from its own loopback port, runs each
// scenario in the page and prints one JSON object: every result (or the error the page saw),
// and the CORS preflights Chromium sent, as the DevTools protocol reports them. Judging is
// left to tests/e2e/test_browser.py.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';
import puppeteer from 'puppeteer-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const config = JSON.parse(process.argv[2]);

async function bundle() {
  const result = await esbuild.build({
    entryPoints: [path.join(here, 'page', 'scenarios.mjs')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    // The page reports the SDK's error classes by name.
    keepNames: true,
  });
  return result.outputFiles[0].text;
}

// The page's origin: a static server on its own port, so every call to the proxy is cross-origin.
async function serve(files, port) {
  const server = http.createServer((req, res) => {
    const file = files[new URL(req.url, 'http://x').pathname];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' }).end(file.body);
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

async function main() {
  const started = Date.now();
  const files = {
    '/': { type: 'text/html', body: await readFile(path.join(here, 'page', 'index.html')) },
    '/scenarios.js': { type: 'text/javascript', body: await bundle() },
    // Chromium asks for one; a 404 would be noise in the console log.
    '/favicon.ico': { type: 'image/x-icon', body: '' },
  };
  const server = await serve(files, config.pagePort ?? 0);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const browser = await puppeteer.launch({
    executablePath: config.chromium,
    headless: true,
    // Root (CI, these machines) cannot use Chromium's sandbox.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const out = { origin, chromium: await browser.version(), results: {}, preflights: [], console: [] };
  try {
    const page = await browser.newPage();
    page.on('console', (message) => out.console.push(`${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => out.console.push(`pageerror: ${error.message}`));
    // Chromium reports each CORS preflight to DevTools as an OPTIONS request (initiator type
    // "preflight"); the page itself sends none.
    const cdp = await page.createCDPSession();
    await cdp.send('Network.enable');
    cdp.on('Network.requestWillBeSent', (event) => {
      if (event.request.method !== 'OPTIONS') return;
      const headers = Object.fromEntries(
        Object.entries(event.request.headers).map(([name, value]) => [name.toLowerCase(), value]),
      );
      out.preflights.push({
        url: event.request.url,
        method: event.request.method,
        initiator: event.initiator?.type ?? null,
        origin: headers['origin'] ?? null,
        accessControlRequestHeaders: headers['access-control-request-headers'] ?? null,
      });
    });
    await page.goto(origin, { waitUntil: 'load' });
    await page.waitForFunction(() => window.scenariosReady === true, { timeout: 10_000 });
    for (const run of config.runs) {
      const settings = { baseURL: config.proxyUrl, token: config.token, model: config.model, ...run };
      // The SDK's error class and message as the page saw them (a CORS refusal is an
      // APIConnectionError: the page is told nothing more).
      out.results[run.name] = await page.evaluate(async (s) => {
        try {
          return await window.scenarios[s.scenario](s);
        } catch (error) {
          return { error: error?.constructor?.name ?? 'Error', message: String(error?.message ?? error) };
        }
      }, settings);
    }
  } finally {
    await browser.close();
    server.close();
  }
  out.elapsedMs = Date.now() - started;
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`);
  process.exit(1);
});
