// mcp-serve over Streamable HTTP, driven by the SDK's
// StreamableHTTPClientTransport: JSON answers (the default) and SSE
// answers (--sse).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import { connectHttp, startHttp, waitFor } from './lib.mjs';
import { sdkSuite } from './suite.mjs';

for (const mode of ['json', 'sse']) {
    describe(`http (${mode} answers): the SDK client`, () => {
        let srv, conn;
        before(async () => {
            srv = await startHttp({ args: mode === 'sse' ? ['--sse'] : [] });
            conn = await connectHttp(srv);
        });
        after(async () => {
            if (mode === 'json') {
                // end the session with DELETE, then stop the server
                try {
                    await conn?.transport.terminateSession();
                    assert.equal(conn.transport.sessionId, undefined);
                    await conn?.close();
                } finally {
                    await srv?.stop();
                }
            } else {
                // stop the server under an open session, its GET stream
                // still waiting for notifications: it must still exit 0
                try {
                    await srv?.stop();
                } finally {
                    await conn?.close();
                }
            }
        });
        it('has a session id', () => {
            assert.match(conn.transport.sessionId, /^[0-9a-f]{32}$/);
            assert.equal(conn.transport.protocolVersion, '2025-11-25');
        });
        sdkSuite(() => conn);
    });
}

describe('http: many sessions', () => {
    let srv, conn;
    before(async () => {
        srv = await startHttp();
        conn = await connectHttp(srv);
    });
    after(async () => {
        try { await conn?.close(); } finally { await srv?.stop(); }
    });

    it('still notifies the first session after 300 more were opened', async () => {
        const { client } = conn;
        // sessions that stay open (clients that never send DELETE)
        for (let i = 0; i < 300; i++) {
            const r = await fetch(srv.url, {
                method: 'POST',
                headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
                body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
                    protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: `idle-${i}`, version: '0' } } }),
            });
            assert.equal(r.status, 200);
            await r.text();
        }
        const got = [];
        client.setNotificationHandler(ResourceUpdatedNotificationSchema, n => { got.push(n.params.uri); });
        await client.subscribeResource({ uri: 'eddy://metrics' });
        await waitFor(() => got.includes('eddy://metrics'), 10000, 'notifications/resources/updated for eddy://metrics');
    });
});
