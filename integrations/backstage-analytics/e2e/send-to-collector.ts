/**
 * End-to-end: the module posts to a real collector (started by
 * tests/web/test_backstage_analytics.py), with a Backstage user token the test's auth backend
 * signed. Node has no `navigator.sendBeacon`; the beacon is emulated with what a browser sends for
 * `sendBeacon(url, string)`: a POST with a `text/plain;charset=UTF-8` body, no Authorization header.
 *
 * Env: COLLECTOR_URL, BACKSTAGE_TOKEN, PORTAL_ORIGIN. Prints a JSON summary; exits 1 on failure.
 */
import { CollectorAnalyticsApi } from '../src/index.js';

async function main(): Promise<void> {
  const collectorUrl = process.env.COLLECTOR_URL!;
  const token = process.env.BACKSTAGE_TOKEN!;
  const origin = process.env.PORTAL_ORIGIN!;
  const beacons: Promise<Response>[] = [];
  let hide: () => void = () => undefined;
  const warnings: string[] = [];
  const api = new CollectorAnalyticsApi({
    collectorUrl,
    identityApi: { getCredentials: async () => ({ token }) },
    batchSize: 3,
    flushIntervalMs: 50,
    // as a browser on the portal's origin sends them
    fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), Origin: origin } }),
    sendBeacon: (url, body) => {
      beacons.push(fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'text/plain;charset=UTF-8', Origin: origin } }));
      return true;
    },
    lifecycle: { onHide: listener => (hide = listener) },
    logger: { warn: m => warnings.push(m) },
  });
  const context = { pluginId: 'catalog', routeRef: 'catalog:entity', extension: 'App', entityRef: 'component:default/petstore' };
  api.captureEvent({ action: 'navigate', subject: '/catalog', context: { ...context, entityRef: undefined } });
  api.captureEvent({ action: 'navigate', subject: '/catalog/default/component/petstore', attributes: { namespace: 'default', kind: 'component', name: 'petstore' }, context });
  api.captureEvent({ action: 'search', subject: 'petstore', value: 3, context: { ...context, pluginId: 'search' } });
  api.captureEvent({ action: 'click', subject: 'Open docs', context });
  await api.flush();
  const sentByRequest = api.stats.sent;
  // the page is hidden with events still queued: they leave by beacon
  api.captureEvent({ action: 'navigate', subject: '/docs/default/component/petstore', context: { ...context, pluginId: 'techdocs' } });
  api.captureEvent({ action: 'navigate', subject: '/create', context: { ...context, pluginId: 'scaffolder' } });
  hide();
  const responses = await Promise.all(beacons);
  const beaconStatus = responses.map(r => r.status);
  const beaconAccepted = (await Promise.all(responses.map(r => r.json() as Promise<{ accepted: number }>))).reduce((n, b) => n + b.accepted, 0);
  const summary = { sentByRequest, beaconed: api.stats.beaconed, beaconStatus, beaconAccepted, pending: api.pending(), dropped: api.stats.dropped, warnings };
  console.log(JSON.stringify(summary));
  if (sentByRequest !== 4 || beaconAccepted !== 2 || api.pending() !== 0 || api.stats.dropped !== 0) process.exit(1);
}

main().catch(error => {
  console.error(error);
  process.exit(1);
});
