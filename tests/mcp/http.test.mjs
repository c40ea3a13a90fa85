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
            try {
                // ends the session with DELETE
                await conn?.transport.terminateSession();
                await conn?.close();
            } finally {
                await srv?.stop();
            }
        });
        it('has a session id', () => {
            assert.match(conn.transport.sessionId, /^[0-9a-f]{32}$/);
            assert.equal(conn.transport.protocolVersion, '2025-11-25');
        });
        sdkSuite(() => conn);
    });
}
