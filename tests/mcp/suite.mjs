// What the SDK client must be able to do against mcp-serve, whatever the
// transport: one `it` per capability, run inside a describe() whose
// before() connects (conn() returns {client, seen, errors}).
//
// The topology keeps changing while these run, so checks that compare two
// reads of one key bracket them (first <= second <= third) instead of
// expecting equality.
import assert from 'node:assert/strict';
import { it } from 'node:test';

import {
    McpError, ErrorCode, LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

import { sleep, waitFor } from './lib.mjs';

export const TOOLS = ['describe_topology', 'get_value', 'scan_store', 'get_windows', 'get_matches', 'top_keys', 'get_metrics'];
export const STORES = { bidders: 'kv', auction_windows: 'window', bidder_sessions: 'session' };

/** Call a tool that must succeed; checks the result's shape and returns
 *  structuredContent. */
export async function call(client, name, args = {}) {
    const r = await client.callTool({ name, arguments: args });
    assert.notEqual(r.isError, true, `${name}(${JSON.stringify(args)}) failed: ${r.content?.[0]?.text}`);
    assert.equal(r.content.length, 1);
    assert.equal(r.content[0].type, 'text');
    assert.ok(r.structuredContent, `${name}: no structuredContent`);
    assert.deepEqual(r.structuredContent, JSON.parse(r.content[0].text),
        `${name}: structuredContent differs from the text content`);
    return r.structuredContent;
}

async function expectRpcError(promise, code, re) {
    await assert.rejects(promise, e => {
        assert.ok(e instanceof McpError, `expected an McpError, got ${e}`);
        assert.equal(e.code, code, `error code ${e.code} (${e.message}), expected ${code}`);
        if (re) assert.match(e.message, re);
        return true;
    });
}

/** The bidder with the most bids (the generator has a few hot ones). */
async function hotBidder(client) {
    const top = await waitFor(async () => {
        const t = await call(client, 'top_keys', { store: 'bidders', field: 'bids', n: 5 });
        return t.items.length ? t : null;
    }, 30000, 'a bidder in store bidders');
    return top.items[0];
}

/**
 * The bidder the generator favours now. Nexmark gives 3/4 of all bids to
 * one "hot" bidder, person 100k+1 (ids from 1000) of the newest batch of
 * 100 people; a new batch starts every 5000 events (5 s here), and then
 * bidder + 100 takes over. A person id exists once it has bid, so the hot
 * bidder is the last of 1001, 1101, ... that get_value finds.
 */
async function hotBidderNow(client) {
    const found = async b => (await call(client, 'get_value', { store: 'bidders', key: { bidder: b } })).found;
    await waitFor(() => found(1001), 30000, 'bidder 1001');
    let b = 1001;
    while (await found(b + 100)) b += 100;
    return b;
}

function readJson(res) {
    assert.equal(res.contents.length, 1);
    assert.equal(res.contents[0].mimeType, 'application/json');
    return JSON.parse(res.contents[0].text);
}

export function sdkSuite(conn, { protocolVersion = '2025-11-25' } = {}) {
    it('initializes: server info, negotiated protocol version, capabilities', () => {
        const { client, seen } = conn();
        const info = client.getServerVersion();
        assert.equal(info.name, 'eddy-mcp');
        assert.match(info.version, /^\d+\.\d+\.\d+/);
        const init = seen.find(m => m.id !== undefined && m.result?.protocolVersion);
        assert.ok(init, 'no initialize result seen');
        assert.equal(init.result.protocolVersion, protocolVersion);
        const caps = client.getServerCapabilities();
        assert.ok(caps.tools, 'tools capability');
        assert.equal(caps.resources?.subscribe, true, 'resources.subscribe');
        assert.ok(caps.prompts, 'prompts capability');
        assert.ok(caps.logging, 'logging capability');
        assert.match(client.getInstructions(), /describe_topology/);
    });

    it('lists every tool with input and output schemas, read-only', async () => {
        const { client } = conn();
        const { tools, nextCursor } = await client.listTools();
        assert.equal(nextCursor, undefined);
        assert.deepEqual(tools.map(t => t.name).sort(), [...TOOLS].sort());
        for (const t of tools) {
            assert.equal(t.inputSchema?.type, 'object', `${t.name}: inputSchema`);
            assert.equal(t.outputSchema?.type, 'object', `${t.name}: outputSchema`);
            assert.equal(t.annotations?.readOnlyHint, true, `${t.name}: readOnlyHint`);
            assert.ok(t.description.length > 20, `${t.name}: description`);
        }
        // the store arguments offer the stores that fit
        const get = tools.find(t => t.name === 'get_value');
        assert.deepEqual(get.inputSchema.properties.store.enum, ['bidders']);
        const win = tools.find(t => t.name === 'get_windows');
        assert.deepEqual([...win.inputSchema.properties.store.enum].sort(), ['auction_windows', 'bidder_sessions']);
    });

    it('describe_topology lists the three stores with their kinds', async () => {
        const d = await call(conn().client, 'describe_topology');
        assert.equal(d.application, 'mcp-sdk-test');
        const kinds = Object.fromEntries(d.stores.map(s => [s.name, s.kind]));
        assert.deepEqual(kinds, STORES);
        const bidders = d.stores.find(s => s.name === 'bidders');
        assert.deepEqual(bidders.key.map(f => f.name), ['bidder']);
        assert.ok(bidders.value.some(f => f.name === 'bids' && f.type === 'int'));
        assert.equal(bidders.resource_template, 'eddy://store/bidders/{bidder}');
        assert.ok(d.stores.find(s => s.name === 'auction_windows').retention_ms >= 60000);
        assert.ok(d.sources.some(s => s.type === 'nexmark'));
        assert.ok(d.operators.length >= 3);
    });

    it('top_keys ranks bidders by bids, descending', async () => {
        const { client } = conn();
        await hotBidder(client);
        const t = await call(client, 'top_keys', { store: 'bidders', field: 'bids', n: 5 });
        assert.equal(t.store, 'bidders');
        assert.equal(t.field, 'bids');
        assert.ok(t.items.length >= 2 && t.items.length <= 5, `${t.items.length} items`);
        for (let i = 1; i < t.items.length; i++)
            assert.ok(t.items[i - 1].bids >= t.items[i].bids, `not descending at ${i}: ${JSON.stringify(t.items)}`);
        assert.ok(t.scanned >= t.items.length);
        // windowed stores rank too, restricted by window start
        const w = await call(client, 'top_keys', { store: 'auction_windows', field: 'bids', n: 3 });
        for (let i = 1; i < w.items.length; i++) assert.ok(w.items[i - 1].bids >= w.items[i].bids);
    });

    it('get_value finds a bidder seen by scan_store, with a consistent bids count', async () => {
        const { client } = conn();
        await hotBidder(client);
        const scan = await call(client, 'scan_store', { store: 'bidders', limit: 5 });
        const row = scan.items[scan.items.length - 1];
        const v = await call(client, 'get_value', { store: 'bidders', key: { bidder: row.bidder } });
        assert.equal(v.found, true);
        assert.deepEqual(v.key, { bidder: row.bidder });
        assert.equal(v.value.bidder, row.bidder);
        // counts only grow: scan <= get <= scan again
        const again = await call(client, 'scan_store', { store: 'bidders', from: { bidder: row.bidder }, limit: 1 });
        assert.equal(again.items[0].bidder, row.bidder);
        assert.ok(row.bids <= v.value.bids && v.value.bids <= again.items[0].bids,
            `bids ${row.bids} <= ${v.value.bids} <= ${again.items[0].bids}`);
        // a bare value works for a one-field key; a bidder that never bid is not found
        const bare = await call(client, 'get_value', { store: 'bidders', key: row.bidder });
        assert.equal(bare.found, true);
        const none = await call(client, 'get_value', { store: 'bidders', key: { bidder: -1 } });
        assert.equal(none.found, false);
        assert.equal(none.value, null);
    });

    it('scan_store pages with limit and cursor, in key order, without duplicates', async () => {
        const { client } = conn();
        await waitFor(async () => (await call(client, 'scan_store', { store: 'bidders', limit: 20 })).next_cursor,
            30000, 'more than 20 bidders');
        const keys = [];
        let cursor = null;
        for (let page = 0; page < 4; page++) {
            const s = await call(client, 'scan_store', { store: 'bidders', limit: 7, ...(cursor ? { cursor } : {}) });
            assert.equal(s.count, s.items.length);
            assert.ok(s.items.length <= 7);
            keys.push(...s.items.map(i => i.bidder));
            cursor = s.next_cursor;
            if (!cursor) break;
        }
        assert.ok(keys.length >= 20, `${keys.length} keys over the pages`);
        assert.equal(new Set(keys).size, keys.length, `duplicates: ${keys}`);
        for (let i = 1; i < keys.length; i++) assert.ok(keys[i - 1] < keys[i], `not in key order: ${keys}`);
        // a key range [from, to): the keys seen there, and any bidder
        // whose first bid came since, all inside the range and in order
        const r = await call(client, 'scan_store', { store: 'bidders', from: { bidder: keys[2] }, to: { bidder: keys[6] } });
        const inRange = r.items.map(i => i.bidder);
        for (const k of keys.slice(2, 6)) assert.ok(inRange.includes(k), `${k} missing from ${inRange}`);
        assert.ok(inRange.every(k => k >= keys[2] && k < keys[6]), `outside [${keys[2]}, ${keys[6]}): ${inRange}`);
        for (let i = 1; i < inRange.length; i++) assert.ok(inRange[i - 1] < inRange[i]);
        // windowed stores scan whole
        const w = await call(client, 'scan_store', { store: 'bidder_sessions', limit: 3 });
        assert.ok(w.items.length >= 1 && w.items.every(i => i.window_start < i.window_end));
    });

    it('get_windows returns a key\'s windows in time order', async () => {
        const { client } = conn();
        // an auction with several closed 2 s windows behind it
        const hot = await waitFor(async () => {
            const t = await call(client, 'top_keys', { store: 'auction_windows', field: 'bids', n: 20 });
            for (const { auction } of t.items) {
                const w = await call(client, 'get_windows', { store: 'auction_windows', key: { auction } });
                if (w.count >= 2) return { auction, w };
            }
            return null;
        }, 30000, 'an auction with two windows');
        const { w } = hot;
        assert.equal(w.kind, 'window');
        assert.deepEqual(w.key, { auction: hot.auction });
        assert.equal(w.count, w.windows.length);
        for (const x of w.windows) {
            assert.equal(x.auction, hot.auction);
            assert.ok(x.window_start < x.window_end);
            assert.equal(x.window_end - x.window_start, 2000, 'tumbling windows of 2 s');
            assert.ok(x.bids >= 1);
        }
        for (let i = 1; i < w.windows.length; i++)
            assert.ok(w.windows[i - 1].window_start < w.windows[i].window_start, 'windows not in time order');
        // from/to select by start; limit + cursor page through them
        const first = w.windows[0].window_start;
        const one = await call(client, 'get_windows', { store: 'auction_windows', key: hot.auction, from: first, to: first });
        assert.deepEqual(one.windows.map(x => x.window_start), [first]);
        const p1 = await call(client, 'get_windows', { store: 'auction_windows', key: hot.auction, limit: 1 });
        assert.equal(p1.windows.length, 1);
        assert.equal(typeof p1.next_cursor, 'string');
        const p2 = await call(client, 'get_windows', { store: 'auction_windows', key: hot.auction, limit: 1, cursor: p1.next_cursor });
        assert.ok(p2.windows[0].window_start > p1.windows[0].window_start);
        // sessions of the hottest bidder
        const b = await hotBidder(client);
        const s = await call(client, 'get_windows', { store: 'bidder_sessions', key: { bidder: b.bidder } });
        assert.equal(s.kind, 'session');
        assert.ok(s.windows.length >= 1);
        for (const x of s.windows) assert.ok(x.window_start < x.window_end);
        for (let i = 1; i < s.windows.length; i++) assert.ok(s.windows[i - 1].window_start < s.windows[i].window_start);
    });

    it('get_metrics shows input and per-store freshness', async () => {
        const { client } = conn();
        const m = await waitFor(async () => {
            const x = await call(client, 'get_metrics');
            return x.events_in > 0 && x.stores.every(s => s.freshness_ms !== null) ? x : null;
        }, 30000, 'events_in > 0 and fresh stores');
        assert.equal(m.running, true);
        assert.equal(m.last_error, '');
        assert.ok(m.events_per_second >= 0);
        assert.deepEqual(Object.fromEntries(m.stores.map(s => [s.name, s.kind])), STORES);
        for (const s of m.stores) {
            assert.equal(typeof s.freshness_ms, 'number', `${s.name}: freshness_ms`);
            assert.equal(typeof s.newest_event_ms, 'number', `${s.name}: newest_event_ms`);
            assert.equal(s.freshness_ms, m.now_ms - s.newest_event_ms);
        }
        assert.ok(m.tasks.length >= 1);
    });

    it('an unknown tool is a JSON-RPC error -32602', async () => {
        await expectRpcError(conn().client.callTool({ name: 'drop_all_tables', arguments: {} }),
            ErrorCode.InvalidParams, /unknown tool 'drop_all_tables'.*describe_topology/);
    });

    it('a bad argument is a tool error that says what would work', async () => {
        const { client } = conn();
        const r = await client.callTool({ name: 'get_value', arguments: { store: 'nope', key: 1 } });
        assert.equal(r.isError, true);
        assert.match(r.content[0].text, /no store named 'nope'/);
        assert.match(r.content[0].text, /bidders \(kv\)/);
        const w = await client.callTool({ name: 'get_value', arguments: { store: 'auction_windows', key: 1 } });
        assert.equal(w.isError, true);
        assert.match(w.content[0].text, /use get_windows/);
        const k = await client.callTool({ name: 'get_value', arguments: { store: 'bidders', key: { auction: 1 } } });
        assert.equal(k.isError, true);
        assert.match(k.content[0].text, /bidder/);
        const f = await client.callTool({ name: 'top_keys', arguments: { store: 'bidders', field: 'colour' } });
        assert.equal(f.isError, true);
        assert.match(f.content[0].text, /bids \(int\)/);
    });

    it('lists resources and templates, reads a key of the kv store', async () => {
        const { client } = conn();
        const { resources } = await client.listResources();
        const uris = resources.map(r => r.uri);
        for (const u of ['eddy://topology', 'eddy://metrics', 'eddy://store/bidders',
                         'eddy://store/auction_windows', 'eddy://store/bidder_sessions'])
            assert.ok(uris.includes(u), `${u} not listed: ${uris}`);
        for (const r of resources) assert.equal(r.mimeType, 'application/json');
        const { resourceTemplates } = await client.listResourceTemplates();
        assert.deepEqual(resourceTemplates.map(t => t.uriTemplate).sort(),
            ['eddy://store/auction_windows/{auction}', 'eddy://store/bidder_sessions/{bidder}',
             'eddy://store/bidders/{bidder}']);
        const b = await hotBidder(client);
        const uri = `eddy://store/bidders/${b.bidder}`;
        const res = await client.readResource({ uri });
        assert.equal(res.contents[0].uri, uri);
        const body = readJson(res);
        assert.equal(body.found, true);
        assert.equal(body.value.bidder, b.bidder);
        assert.ok(body.value.bids >= b.bids);
        const store = readJson(await client.readResource({ uri: 'eddy://store/bidders' }));
        assert.equal(store.kind, 'kv');
        assert.ok(store.first_entries.length >= 1);
        const topo = readJson(await client.readResource({ uri: 'eddy://topology' }));
        assert.equal(topo.application, 'mcp-sdk-test');
        const sessions = readJson(await client.readResource({ uri: `eddy://store/bidder_sessions/${b.bidder}` }));
        assert.ok(sessions.latest_windows.length >= 1);
        await expectRpcError(client.readResource({ uri: 'eddy://store/nope/1' }), -32002, /no store 'nope'/);
    });

    it('a subscribed key that changes is notified with resources/updated', async () => {
        const { client } = conn();
        // the hot bidder now and the next one: one of them gets bids in
        // every commit from now on (see hotBidderNow)
        const hot = await hotBidderNow(client);
        const uris = [hot, hot + 100].map(b => `eddy://store/bidders/${b}`);
        const bids = async uri => readJson(await client.readResource({ uri })).value?.bids ?? 0;
        const before = {};
        for (const u of uris) before[u] = await bids(u);
        const got = [];
        client.setNotificationHandler(ResourceUpdatedNotificationSchema, n => { got.push(n.params.uri); });
        try {
            for (const uri of uris) assert.deepEqual(await client.subscribeResource({ uri }), {});
            const uri = await waitFor(() => got.find(u => uris.includes(u)), 10000,
                `notifications/resources/updated for ${uris.join(' or ')}`);
            const after = await bids(uri);
            assert.ok(after > before[uri], `${uri}: bids ${before[uri]} -> ${after}: notified without a change`);
            assert.ok(got.every(u => uris.includes(u)), `notified for resources not subscribed to: ${got}`);
            // after unsubscribing, no more (one already on its way may still land)
            for (const uri of uris) await client.unsubscribeResource({ uri });
            await sleep(500);
            got.length = 0;
            await sleep(1500);
            assert.deepEqual(got, [], 'notified after unsubscribe');
        } finally {
            client.removeNotificationHandler('notifications/resources/updated');
        }
        await expectRpcError(client.subscribeResource({ uri: 'eddy://nothing' }), -32002);
    });

    it('lists prompts and fills one in', async () => {
        const { client } = conn();
        const { prompts } = await client.listPrompts();
        assert.deepEqual(prompts.map(p => p.name).sort(), ['explain_topology', 'investigate_key', 'summarize_hot_keys']);
        const hot = prompts.find(p => p.name === 'summarize_hot_keys');
        assert.ok(hot.arguments.find(a => a.name === 'store').required);
        const p = await client.getPrompt({ name: 'summarize_hot_keys', arguments: { store: 'bidders', field: 'bids' } });
        assert.equal(p.messages[0].role, 'user');
        assert.match(p.messages[0].content.text, /store 'bidders' and field 'bids'/);
        await expectRpcError(client.getPrompt({ name: 'summarize_hot_keys', arguments: {} }),
            ErrorCode.InvalidParams, /'store' is required/);
        await expectRpcError(client.getPrompt({ name: 'nope' }), ErrorCode.InvalidParams);
    });

    it('answers ping and logging/setLevel', async () => {
        const { client } = conn();
        assert.deepEqual(await client.ping(), {});
        assert.deepEqual(await client.setLoggingLevel('debug'), {});
        assert.deepEqual(await client.setLoggingLevel('warning'), {});
        await expectRpcError(client.setLoggingLevel('loud'), ErrorCode.InvalidParams, /debug, info/);
    });

    it('sends log messages at the level set: late records at info', async () => {
        const { client } = conn();
        const logs = [];
        client.setNotificationHandler(LoggingMessageNotificationSchema, n => { logs.push(n.params); });
        try {
            await client.setLoggingLevel('info');
            const late = await waitFor(() => logs.find(l => l.logger === 'eddy.late'), 10000,
                'a notifications/message from eddy.late');
            assert.equal(late.level, 'info');
            assert.ok(late.data.new > 0 && late.data.total >= late.data.new, JSON.stringify(late));
            const m = await call(client, 'get_metrics');
            assert.ok(m.late >= late.data.total);
            // back at warning, info messages stop (one on its way may land)
            await client.setLoggingLevel('warning');
            await sleep(300);
            logs.length = 0;
            await sleep(2500);
            assert.deepEqual(logs.filter(l => l.level === 'info'), []);
        } finally {
            client.removeNotificationHandler('notifications/message');
        }
    });

    it('answers many concurrent calls, each to its own request', async () => {
        const { client } = conn();
        const bidders = Array.from({ length: 24 }, (_, i) => 1000 + i);
        const answers = await Promise.all(bidders.map(b =>
            call(client, 'get_value', { store: 'bidders', key: { bidder: b } })));
        assert.deepEqual(answers.map(a => a.key.bidder), bidders);
        for (const a of answers) if (a.found) assert.equal(a.value.bidder, a.key.bidder);
    });

    it('raised no client-side errors', () => {
        const { errors } = conn();
        assert.deepEqual(errors.map(String), []);
    });
}
