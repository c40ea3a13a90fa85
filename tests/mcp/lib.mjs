// Helpers shared by the MCP SDK tests: start and stop mcp-serve (each test
// gets its own process, its own temp state.dir, 127.0.0.1 only), connect
// the official SDK client over stdio or Streamable HTTP, and wait for
// things with a bound.
//
// MCP_SERVE names the binary (ctest sets it to the build's mcp-serve);
// without it, ../../build/mcp-serve relative to this folder.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const here = dirname(fileURLToPath(import.meta.url));
export const MCP_SERVE = resolve(process.env.MCP_SERVE ?? join(here, '../../build/mcp-serve'));
export const TOPOLOGY = join(here, 'topology.yaml');

if (!existsSync(MCP_SERVE))
    throw new Error(`mcp-serve not found at ${MCP_SERVE}: build it or set MCP_SERVE`);

/** Every variable of this process (the SDK passes only a few by default;
 *  ASAN_OPTIONS and friends must reach mcp-serve). */
export function fullEnv() {
    return Object.fromEntries(Object.entries(process.env).filter(([, v]) => typeof v === 'string'));
}

/** A fresh temp dir, removed by the returned cleanup. */
export function tempDir(prefix = 'eddy-mcp-sdk-') {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const sleep = ms => new Promise(r => setTimeout(r, ms));

/** Poll fn until it returns a truthy value; fail after ms. */
export async function waitFor(fn, ms, what) {
    const until = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(50);
    }
}

/** Keep the last `max` characters of a stream (for failure messages);
 *  draining it also keeps the child from blocking on a full pipe. */
export function tail(stream, max = 64 * 1024) {
    const t = { text: '' };
    stream?.setEncoding?.('utf8');
    stream?.on('data', d => {
        t.text += d;
        if (t.text.length > 2 * max) t.text = t.text.slice(-max);
    });
    return t;
}

/** Resolves with {code, signal} when the child exits. */
function exited(child) {
    if (child.exitCode !== null || child.signalCode !== null)
        return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
    return new Promise(r => child.once('exit', (code, signal) => r({ code, signal })));
}

/** SIGTERM the child and check that it exits 0 within ms. */
export async function stopAndCheck(child, stderr, ms = 60000) {
    const done = exited(child);
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    const { code, signal } = await done;
    clearTimeout(timer);
    assert.equal(signal, null, `mcp-serve died of ${signal} after SIGTERM; stderr:\n${stderr?.text}`);
    assert.equal(code, 0, `mcp-serve exited ${code} after SIGTERM; stderr:\n${stderr?.text}`);
}

/**
 * Start `mcp-serve --http 127.0.0.1:0` on a topology (default: ours) with
 * a temp state.dir; resolves once the port file is written.
 */
export async function startHttp({ topology = TOPOLOGY, args = [] } = {}) {
    const tmp = tempDir();
    const portFile = join(tmp.dir, 'port');
    const child = spawn(
        MCP_SERVE,
        ['--http', '127.0.0.1:0', '--port-file', portFile, '--set', `state.dir=${join(tmp.dir, 'state')}`,
         ...args, topology],
        { stdio: ['ignore', 'pipe', 'pipe'], env: fullEnv() });
    const stdout = tail(child.stdout), stderr = tail(child.stderr);
    let early = null;
    child.once('exit', (code, signal) => { early = { code, signal }; });
    const port = await waitFor(() => {
        if (early) throw new Error(`mcp-serve exited (${early.code ?? early.signal}) before listening:\n${stderr.text}`);
        if (!existsSync(portFile)) return null;
        const p = parseInt(readFileSync(portFile, 'utf8'), 10);
        return p > 0 ? p : null;
    }, 60000, 'the port file');
    const base = `http://127.0.0.1:${port}`;
    return {
        child, stdout, stderr, port, base, url: `${base}/mcp`, dir: tmp.dir,
        async stop() {
            try {
                await stopAndCheck(child, stderr);
            } finally {
                tmp.cleanup();
            }
        },
    };
}

/** Records every message the client receives, by wrapping onmessage
 *  before connect (the SDK keeps a handler that was set first). */
function recordIncoming(transport) {
    const seen = [];
    transport.onmessage = msg => seen.push(msg);
    return seen;
}

function newClient() {
    return new Client({ name: 'eddy-sdk-test', version: '1.0.0' }, { capabilities: {} });
}

/** SDK client over Streamable HTTP to a started server. */
export async function connectHttp(srv) {
    const transport = new StreamableHTTPClientTransport(new URL(srv.url));
    const seen = recordIncoming(transport);
    const client = newClient();
    const errors = [];
    client.onerror = e => errors.push(e);
    await client.connect(transport);
    return { client, transport, seen, errors, close: () => client.close() };
}

/**
 * SDK client over stdio: the SDK spawns mcp-serve itself. stop() sends
 * SIGTERM while the session is still open and checks the exit status.
 */
export async function connectStdio({ topology = TOPOLOGY, args = [] } = {}) {
    const tmp = tempDir();
    const transport = new StdioClientTransport({
        command: MCP_SERVE,
        args: ['--set', `state.dir=${join(tmp.dir, 'state')}`, ...args, topology],
        env: fullEnv(),
        stderr: 'pipe',
    });
    const stderr = tail(transport.stderr);
    const seen = recordIncoming(transport);
    const client = newClient();
    const errors = [];
    client.onerror = e => errors.push(e);
    await client.connect(transport);
    // the SDK keeps the child private; we need its exit status
    const child = transport._process;
    assert.ok(child, 'the stdio transport has no child process');
    return {
        client, transport, seen, errors, stderr, dir: tmp.dir,
        async stop() {
            try {
                await stopAndCheck(child, stderr);
                await client.close();
            } finally {
                tmp.cleanup();
            }
        },
    };
}

/** The topology with extra YAML appended (written into dir). */
export function topologyWith(dir, pipelinesYaml, sinksYaml) {
    let text = readFileSync(TOPOLOGY, 'utf8');
    text = text.replace(/^pipelines:\n/m, `pipelines:\n${pipelinesYaml}`);
    text = text.replace(/^sinks:\n/m, `sinks:\n${sinksYaml}`);
    const file = join(dir, 'topology.yaml');
    writeFileSync(file, text);
    return file;
}
