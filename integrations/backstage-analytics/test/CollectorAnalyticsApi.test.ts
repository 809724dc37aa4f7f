import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CollectorAnalyticsApi, expiresWithin } from '../src/index.js';
import type { CollectorAnalyticsOptions } from '../src/index.js';

/** A JWT-shaped token (unsigned: the module only reads `exp` to avoid sending a dead token). */
function token(sub: string, expSeconds = 4_102_444_800 /* 2100-01-01 */): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'ES256', kid: 'k1' })}.${part({ sub, exp: expSeconds })}.c2lnbmF0dXJl`;
}

/** Timers run by hand, so backoff is observed without waiting. */
class Timers {
  pending: { fn: () => void; ms: number; id: number }[] = [];
  next = 1;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.next++;
    this.pending.push({ fn, ms, id });
    return id;
  };
  clearTimeout = (id: unknown) => {
    this.pending = this.pending.filter(t => t.id !== id);
  };
  async runAll(): Promise<number[]> {
    const delays: number[] = [];
    for (let i = 0; i < 50 && this.pending.length; i++) {
      const t = this.pending.shift()!;
      delays.push(t.ms);
      t.fn();
      await settle();
    }
    return delays;
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve));
}

type Sent = { url: string; headers: Record<string, string>; body: any };

function setup(responses: (number | Error)[] = [], options: Partial<CollectorAnalyticsOptions> = {}) {
  const timers = new Timers();
  const sent: Sent[] = [];
  const beacons: { url: string; body: any }[] = [];
  let hide: () => void = () => undefined;
  const fetch = (async (url: string, init: RequestInit) => {
    sent.push({ url, headers: init.headers as Record<string, string>, body: JSON.parse(init.body as string) });
    const next = responses.shift() ?? 200;
    if (next instanceof Error) throw next;
    return new Response(JSON.stringify({ accepted: 1 }), { status: next, headers: next === 503 ? { 'Retry-After': '7' } : {} });
  }) as typeof globalThis.fetch;
  let n = 0;
  const api = new CollectorAnalyticsApi({
    collectorUrl: 'https://insights.example.com/usage/',
    identityApi: { getCredentials: async () => ({ token: token('user:default/jane') }) },
    fetch,
    sendBeacon: (url, body) => {
      beacons.push({ url, body: JSON.parse(body) });
      return true;
    },
    lifecycle: { onHide: listener => (hide = listener) },
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    random: () => 1,
    newId: () => `id-${++n}`,
    logger: { warn: () => undefined },
    ...options,
  });
  return { api, timers, sent, beacons, hide: () => hide() };
}

const event = (subject: string) => ({ action: 'navigate', subject, context: { pluginId: 'catalog', routeRef: 'r', extension: 'App' } });

test('events are batched and sent with the signed-in user token, never with a user of their own', async () => {
  const { api, timers, sent } = setup([], { batchSize: 3 });
  await settle();
  api.captureEvent(event('/a'));
  api.captureEvent(event('/b'));
  assert.equal(sent.length, 0, 'a partial batch waits for the flush interval');
  api.captureEvent(event('/c'));
  await settle();
  assert.equal(sent.length, 1);
  assert.equal(sent[0].url, 'https://insights.example.com/usage/events');
  assert.equal(sent[0].headers.Authorization, `Bearer ${token('user:default/jane')}`);
  assert.deepEqual(sent[0].body.map((e: any) => e.subject), ['/a', '/b', '/c']);
  for (const e of sent[0].body) {
    assert.equal(e.userEntityRef, undefined);
    assert.ok(e.eventId && e.sessionId && !Number.isNaN(Date.parse(e.timestamp)));
  }
  api.captureEvent(event('/d'));
  assert.deepEqual(timers.pending.map(t => t.ms), [5000]);
  await timers.runAll();
  assert.equal(sent.length, 2);
  assert.equal(api.pending(), 0);
});

test('captureEvent returns at once even when the identity API never answers', async () => {
  const { api, sent } = setup([], { identityApi: { getCredentials: () => new Promise(() => undefined) }, batchSize: 1 });
  for (let i = 0; i < 5; i++) api.captureEvent(event(`/p${i}`));
  await settle();
  assert.equal(sent.length, 0);
  assert.equal(api.pending(), 5);
});

test('failed batches are retried with exponential backoff, honouring Retry-After', async () => {
  const { api, timers, sent } = setup([new Error('offline'), 500, 503, 200], { batchSize: 1, backoffBaseMs: 1000 });
  await settle();
  api.captureEvent(event('/a'));
  await settle();
  const delays = await timers.runAll();
  assert.deepEqual(delays, [1000, 2000, 7000]); // 1 s, 2 s, then the server's Retry-After: 7 s over 4 s
  assert.equal(sent.length, 4);
  assert.equal(api.stats.sent, 1);
  assert.equal(api.pending(), 0);
});

test('a batch the collector refuses for its content is dropped, not retried', async () => {
  const { api, timers, sent } = setup([422], { batchSize: 1 });
  await settle();
  api.captureEvent(event('/a'));
  await settle();
  await timers.runAll();
  assert.equal(sent.length, 1);
  assert.equal(api.stats.dropped, 1);
  assert.equal(api.pending(), 0);
});

test('a 401 asks the identity API for a fresh token before retrying', async () => {
  let calls = 0;
  const { api, timers, sent } = setup([401, 200], {
    batchSize: 1,
    identityApi: { getCredentials: async () => ({ token: token(`user:default/jane-${++calls}`) }) },
  });
  await settle();
  api.captureEvent(event('/a'));
  await settle();
  await timers.runAll();
  assert.equal(sent.length, 2);
  assert.notEqual(sent[0].headers.Authorization, sent[1].headers.Authorization);
});

test('on page hide, queued and retry-waiting events go out by beacon with the token in the body', async () => {
  const { api, timers, sent, beacons, hide } = setup([503], { batchSize: 2 });
  await settle();
  api.captureEvent(event('/a'));
  api.captureEvent(event('/b'));
  await settle(); // the first batch failed and waits for a retry
  api.captureEvent(event('/c'));
  hide();
  assert.equal(beacons.length, 1);
  assert.equal(beacons[0].url, 'https://insights.example.com/usage/events');
  assert.equal(beacons[0].body.token, token('user:default/jane'));
  assert.deepEqual(beacons[0].body.events.map((e: any) => e.subject), ['/a', '/b', '/c']);
  assert.equal(api.pending(), 0);
  await timers.runAll();
  assert.equal(sent.length, 1, 'the beacon took the batch: no retry');
});

test('beacons stay under the size limit, and what the browser refuses stays queued', async () => {
  let accepted = 0;
  const { api, beacons, hide } = setup([], {
    batchSize: 100,
    maxBeaconBytes: 3000,
    sendBeacon: (_url, body) => {
      beacons.push({ url: _url, body: JSON.parse(body) });
      assert.ok(Buffer.byteLength(body) <= 3000);
      return ++accepted <= 2;
    },
  });
  await settle();
  for (let i = 0; i < 40; i++) api.captureEvent(event(`/page/${i}`));
  hide();
  const sentByBeacon = beacons.slice(0, 2).reduce((n, b) => n + b.body.events.length, 0);
  assert.ok(beacons.length > 2);
  assert.equal(api.pending(), 40 - sentByBeacon);
});

test('no beacon with an expired token: the events stay for a normal request', async () => {
  const { api, beacons, hide } = setup([], {
    identityApi: { getCredentials: async () => ({ token: token('user:default/jane', 1000) }) },
    fetch: (() => new Promise(() => undefined)) as typeof fetch,
  });
  await settle();
  api.captureEvent(event('/a'));
  hide();
  assert.equal(beacons.length, 0);
  assert.equal(api.pending(), 1);
});

test('expiresWithin reads exp without trusting anything else', () => {
  const now = 1_700_000_000_000;
  assert.equal(expiresWithin(token('u', now / 1000 + 30), 60, now), true);
  assert.equal(expiresWithin(token('u', now / 1000 + 3600), 60, now), false);
  assert.equal(expiresWithin('not-a-jwt', 0, now), true);
});
