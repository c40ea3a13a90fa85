// mcp-serve over Streamable HTTP, driven by the SDK's
// StreamableHTTPClientTransport: JSON answers (the default) and SSE
// answers (--sse).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { connectHttp, startHttp } from './lib.mjs';
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
