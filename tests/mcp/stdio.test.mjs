// mcp-serve over stdio, driven by the SDK's StdioClientTransport (the SDK
// spawns the server), plus what only stdio has: stdout carries JSON-RPC
// and nothing else, and a malformed line is answered without ending the
// session.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { MCP_SERVE, TOPOLOGY, connectStdio, fullEnv, stopAndCheck, tail, tempDir, topologyWith, waitFor } from './lib.mjs';
import { call, sdkSuite } from './suite.mjs';

describe('stdio: the SDK client', () => {
    let conn;
    before(async () => { conn = await connectStdio(); });
    after(async () => { await conn?.stop(); });
    sdkSuite(() => conn);
});

describe('stdio: a topology with a stdout sink', () => {
    let conn, tmp;
    before(async () => {
        tmp = tempDir();
        // every bid to the console sink: without the redirection it would
        // interleave with the protocol on stdout
        const topo = topologyWith(tmp.dir,
            '  - name: echo\n    from: bid\n    steps:\n      - map: [bidder, auction, price]\n    to: console\n',
            '  - name: console\n    type: stdout\n');
        conn = await connectStdio({ topology: topo });
    });
    after(async () => {
        try { await conn?.stop(); } finally { tmp.cleanup(); }
    });

    it('keeps stdout for JSON-RPC and sends the sink to stderr', async () => {
        const { client, errors, stderr } = conn;
        await waitFor(() => /"bidder"\s*:\s*\d+/.test(stderr.text), 30000, 'sink records on stderr');
        for (let i = 0; i < 20; i++) {
            const m = await call(client, 'get_metrics');
            assert.ok(m.events_out >= 0);
        }
        const d = await call(client, 'describe_topology');
        assert.ok(d.operators.some(o => o.sink));
        assert.deepEqual(errors.map(String), [], 'the client read something that is not JSON-RPC');
        for (const m of conn.seen) assert.equal(m.jsonrpc, '2.0');
    });
});

/** mcp-serve on stdio without the SDK: write raw lines, read raw lines. */
function rawStdio(tmpDir) {
    const child = spawn(MCP_SERVE, ['--set', `state.dir=${join(tmpDir, 'state')}`, TOPOLOGY],
        { stdio: ['pipe', 'pipe', 'pipe'], env: fullEnv() });
    const stderr = tail(child.stderr);
    const lines = [];
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', d => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
            lines.push(buf.slice(0, i));
            buf = buf.slice(i + 1);
        }
    });
    const send = s => child.stdin.write(s + '\n');
    const response = id => waitFor(() => lines.map(l => JSON.parse(l)).find(m => m.id === id), 30000,
        `the response to id ${JSON.stringify(id)}`);
    return { child, stderr, lines, send, response, partial: () => buf };
}

describe('stdio: raw lines', () => {
    let tmp, srv;
    before(() => { tmp = tempDir(); srv = rawStdio(tmp.dir); });
    after(async () => {
        try { await stopAndCheck(srv.child, srv.stderr); } finally { tmp.cleanup(); }
    });

    it('answers a malformed line with -32700 and carries on', async () => {
        srv.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
            params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } }));
        const init = await srv.response(1);
        assert.equal(init.result.protocolVersion, '2025-06-18');
        srv.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
        srv.send('{"jsonrpc": "2.0", "id": 2, "method": ');
        srv.send('this is not json');
        srv.send(JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' }));
        assert.deepEqual((await srv.response(3)).result, {});
        const errs = srv.lines.map(l => JSON.parse(l)).filter(m => m.error?.code === -32700);
        assert.equal(errs.length, 2, `parse errors: ${JSON.stringify(errs)}`);
        for (const e of errs) assert.equal(e.id, null);
        // a request that is JSON but not JSON-RPC: -32600, and still alive
        srv.send(JSON.stringify({ id: 4, method: 'ping' }));
        assert.equal((await srv.response(4)).error.code, -32600);
        srv.send(JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'get_metrics' } }));
        assert.ok((await srv.response(5)).result.structuredContent.events_in >= 0);
        // every line on stdout was one JSON-RPC message, nothing else
        assert.equal(srv.partial(), '');
        for (const l of srv.lines) assert.equal(JSON.parse(l).jsonrpc, '2.0', `not JSON-RPC: ${l}`);
    });

    it('ends at the end of its input, exit 0', async () => {
        const tmp2 = tempDir();
        const own = rawStdio(tmp2.dir);
        try {
            own.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
                params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'eof', version: '0' } } }));
            await own.response(1);
            // a request in the same write as the end of input is still answered
            own.child.stdin.end(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }) + '\n');
            const code = await new Promise(r => own.child.once('exit', (c, sig) => r(c ?? sig)));
            assert.equal(code, 0, own.stderr.text);
            assert.deepEqual(own.lines.map(l => JSON.parse(l).id), [1, 2]);
        } finally {
            tmp2.cleanup();
        }
    });

    it('refuses requests before initialize on a fresh session', async () => {
        const tmp2 = tempDir();
        const fresh = rawStdio(tmp2.dir);
        try {
            fresh.send(JSON.stringify({ jsonrpc: '2.0', id: 'a', method: 'tools/list' }));
            const r = await fresh.response('a');
            assert.equal(r.error.code, -32600);
            assert.match(r.error.message, /initialize/);
            fresh.send(JSON.stringify({ jsonrpc: '2.0', id: 'b', method: 'ping' }));
            assert.deepEqual((await fresh.response('b')).result, {});
        } finally {
            try { await stopAndCheck(fresh.child, fresh.stderr); } finally { tmp2.cleanup(); }
        }
    });
});
