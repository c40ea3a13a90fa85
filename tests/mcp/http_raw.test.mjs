// The Streamable HTTP transport's rules, checked with plain fetch (no
// SDK): sessions, status codes, headers, size limit, DNS-rebinding guard,
// /metrics and /health.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startHttp, waitFor } from './lib.mjs';
import { TOOLS } from './suite.mjs';

const MAX = 4096; // --max-request-bytes
const ACCEPT = 'application/json, text/event-stream';

const init = (id = 1) => ({
    jsonrpc: '2.0', id, method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'fetch', version: '0' } },
});

describe('http: the transport rules (plain fetch)', () => {
    let srv, sid;

    /** POST a body (an object is sent as JSON) with the session's headers
     *  unless overridden (a header set to null is left out). */
    async function post(body, headers = {}) {
        const h = {
            'Content-Type': 'application/json', Accept: ACCEPT,
            'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25', ...headers,
        };
        for (const k of Object.keys(h)) if (h[k] === null || h[k] === undefined) delete h[k];
        const res = await fetch(srv.url, {
            method: 'POST', headers: h, body: typeof body === 'string' ? body : JSON.stringify(body),
        });
        const text = await res.text();
        return { res, text, json: () => JSON.parse(text) };
    }

    before(async () => {
        srv = await startHttp({ args: ['--max-request-bytes', String(MAX)] });
        const r = await post(init(), { 'Mcp-Session-Id': null, 'MCP-Protocol-Version': null });
        assert.equal(r.res.status, 200, r.text);
        assert.match(r.res.headers.get('content-type'), /^application\/json/);
        sid = r.res.headers.get('mcp-session-id');
        assert.match(sid, /^[0-9a-f]{32}$/);
        assert.equal(r.json().result.protocolVersion, '2025-11-25');
        const n = await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
        assert.equal(n.res.status, 202);
    });
    after(async () => { await srv?.stop(); });

    it('answers a request of the session with JSON', async () => {
        const r = await post({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
        assert.equal(r.res.status, 200);
        assert.match(r.res.headers.get('content-type'), /^application\/json/);
        assert.equal(r.json().id, 2);
        assert.equal(r.json().result.tools.length, TOOLS.length);
    });

    it('answers with SSE when the client accepts only text/event-stream', async () => {
        const r = await post({ jsonrpc: '2.0', id: 'sse', method: 'ping' }, { Accept: 'text/event-stream' });
        assert.equal(r.res.status, 200);
        assert.match(r.res.headers.get('content-type'), /^text\/event-stream/);
        const data = r.text.split('\n').find(l => l.startsWith('data: '));
        assert.deepEqual(JSON.parse(data.slice(6)), { jsonrpc: '2.0', id: 'sse', result: {} });
    });

    it('POST without Mcp-Session-Id after initialize: 400', async () => {
        const r = await post({ jsonrpc: '2.0', id: 3, method: 'tools/list' }, { 'Mcp-Session-Id': null });
        assert.equal(r.res.status, 400);
        assert.match(r.json().error.message, /Mcp-Session-Id/);
    });

    it('an unknown session id: 404', async () => {
        const r = await post({ jsonrpc: '2.0', id: 4, method: 'tools/list' }, { 'Mcp-Session-Id': '0'.repeat(32) });
        assert.equal(r.res.status, 404);
        assert.equal(r.json().error.code, -32600);
    });

    it('a body over --max-request-bytes: 413', async () => {
        const big = { jsonrpc: '2.0', id: 5, method: 'ping', params: { pad: 'x'.repeat(MAX) } };
        const r = await post(big);
        assert.equal(r.res.status, 413);
        assert.match(r.json().error.message, new RegExp(`${MAX} bytes`));
        // just under the limit is fine
        const fits = { jsonrpc: '2.0', id: 6, method: 'ping', params: { pad: '' } };
        fits.params.pad = 'x'.repeat(MAX - JSON.stringify(fits).length);
        const ok = await post(fits);
        assert.equal(ok.res.status, 200, ok.text);
    });

    it('a foreign Origin: 403; a loopback one is fine', async () => {
        const r = await post({ jsonrpc: '2.0', id: 7, method: 'ping' }, { Origin: 'http://evil.example' });
        assert.equal(r.res.status, 403);
        const ok = await post({ jsonrpc: '2.0', id: 8, method: 'ping' }, { Origin: `http://localhost:${srv.port}` });
        assert.equal(ok.res.status, 200);
        const m = await fetch(`${srv.base}/metrics`, { headers: { Origin: 'http://evil.example' } });
        assert.equal(m.status, 403);
    });

    it('a wrong Content-Type: 415', async () => {
        const r = await post(JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }), { 'Content-Type': 'text/plain' });
        assert.equal(r.res.status, 415);
    });

    it('an unsupported MCP-Protocol-Version: 400', async () => {
        const r = await post({ jsonrpc: '2.0', id: 10, method: 'ping' }, { 'MCP-Protocol-Version': '1999-01-01' });
        assert.equal(r.res.status, 400);
        assert.match(r.json().error.message, /1999-01-01/);
    });

    it('a notification alone: 202 with no body', async () => {
        const r = await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 99 } });
        assert.equal(r.res.status, 202);
        assert.equal(r.text, '');
    });

    it('invalid JSON: 400 with -32700', async () => {
        const r = await post('{"jsonrpc": "2.0", "id": 11,');
        assert.equal(r.res.status, 400);
        assert.equal(r.json().error.code, -32700);
        assert.equal(r.json().id, null);
    });

    it('GET /metrics: Prometheus text with events and MCP calls', async () => {
        const text = await waitFor(async () => {
            const r = await fetch(`${srv.base}/metrics`);
            assert.equal(r.status, 200);
            assert.match(r.headers.get('content-type'), /^text\/plain/);
            const t = await r.text();
            return /^eddy_events_in_total [1-9]/m.test(t) ? t : null;
        }, 30000, 'events in /metrics');
        assert.match(text, /^eddy_mcp_calls_total\{method="tools\/list"\} [1-9]/m);
        assert.match(text, /^eddy_store_keys\{store="bidders"\} \d+/m);
        assert.match(text, /^# TYPE eddy_events_in_total counter$/m);
    });

    it('GET /health: 200 {"status":"ok"}', async () => {
        const r = await fetch(`${srv.base}/health`);
        assert.equal(r.status, 200);
        const j = await r.json();
        assert.equal(j.status, 'ok');
        assert.equal(j.running, true);
    });

    it('GET /mcp opens the session\'s SSE stream', async () => {
        const ac = new AbortController();
        const r = await fetch(srv.url, {
            headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': sid }, signal: ac.signal,
        });
        assert.equal(r.status, 200);
        assert.match(r.headers.get('content-type'), /^text\/event-stream/);
        ac.abort();
        const none = await fetch(srv.url, { headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': 'f'.repeat(32) } });
        assert.equal(none.status, 404);
    });

    it('an unknown path: 404; PUT /mcp: 405', async () => {
        assert.equal((await fetch(`${srv.base}/nope`)).status, 404);
        const r = await fetch(srv.url, { method: 'PUT', body: '{}' });
        assert.equal(r.status, 405);
        assert.match(r.headers.get('allow'), /POST/);
    });

    it('DELETE ends the session; then 404', async () => {
        const d = await fetch(srv.url, { method: 'DELETE', headers: { 'Mcp-Session-Id': sid } });
        assert.equal(d.status, 200);
        const r = await post({ jsonrpc: '2.0', id: 12, method: 'ping' });
        assert.equal(r.res.status, 404);
        const again = await fetch(srv.url, { method: 'DELETE', headers: { 'Mcp-Session-Id': sid } });
        assert.equal(again.status, 404);
    });
});

describe('http: --sse answers POSTs as SSE streams', () => {
    let srv;
    before(async () => { srv = await startHttp({ args: ['--sse'] }); });
    after(async () => { await srv?.stop(); });

    it('initialize and a request come back as text/event-stream', async () => {
        const headers = { 'Content-Type': 'application/json', Accept: ACCEPT };
        const r = await fetch(srv.url, { method: 'POST', headers, body: JSON.stringify(init()) });
        assert.equal(r.status, 200);
        assert.match(r.headers.get('content-type'), /^text\/event-stream/);
        const sid = r.headers.get('mcp-session-id');
        assert.ok(sid);
        const ev = (await r.text()).split('\n').find(l => l.startsWith('data: '));
        assert.equal(JSON.parse(ev.slice(6)).result.serverInfo.name, 'eddy-mcp');
        const p = await fetch(srv.url, {
            method: 'POST', headers: { ...headers, 'Mcp-Session-Id': sid },
            body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
        });
        assert.match(p.headers.get('content-type'), /^text\/event-stream/);
        // a client that accepts only JSON still gets JSON
        const j = await fetch(srv.url, {
            method: 'POST', headers: { ...headers, Accept: 'application/json', 'Mcp-Session-Id': sid },
            body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' }),
        });
        assert.match(j.headers.get('content-type'), /^application\/json/);
        assert.deepEqual(await j.json(), { jsonrpc: '2.0', id: 3, result: {} });
    });
});
