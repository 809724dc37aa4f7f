import type { AnalyticsApi, AnalyticsEvent, ConfigApi, IdentityApi } from '@backstage/core-plugin-api';

/**
 * What the collector receives for each event: Backstage's `AnalyticsEvent` plus an envelope
 * (`eventId`, `timestamp`, `sessionId`). There is deliberately no `userEntityRef`: the collector
 * takes the user from the verified Backstage token of the request, never from the event.
 */
export type CollectorEvent = {
  eventId: string;
  timestamp: string;
  sessionId: string;
  action: string;
  subject: string;
  value?: number;
  attributes?: AnalyticsEvent['attributes'];
  context: AnalyticsEvent['context'];
};

/** Where the page lifecycle events come from (`window` and `document` in a browser). */
export type PageLifecycle = {
  onHide(listener: () => void): void;
};

export type Logger = { warn(message: string): void };

export type CollectorAnalyticsOptions = {
  /** The collector's base URL, e.g. `https://insights.example.com/usage` (it serves `POST /events`). */
  collectorUrl: string;
  /** Backstage's identity API: `getCredentials()` gives the signed-in user's Backstage token. */
  identityApi: Pick<IdentityApi, 'getCredentials'>;
  /** Events per request (the collector takes 1–100). Default 25. */
  batchSize?: number;
  /** Send a partial batch after this many milliseconds. Default 5000. */
  flushIntervalMs?: number;
  /** Attempts per batch before it is given up (network errors, 401, 429, 5xx). Default 6. */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt (with jitter), capped by `backoffMaxMs`. Default 1000. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Events kept while the collector cannot be reached; the oldest are dropped beyond. Default 1000. */
  maxQueue?: number;
  /** Largest beacon body in bytes (browsers cap a page's beacons at 64 KiB). Default 60000. */
  maxBeaconBytes?: number;
  // Injected for tests; browser defaults otherwise.
  fetch?: typeof fetch;
  sendBeacon?: (url: string, body: string) => boolean;
  lifecycle?: PageLifecycle;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  random?: () => number;
  now?: () => number;
  newId?: () => string;
  logger?: Logger;
};

const MAX_BATCH = 100;

type Batch = { events: CollectorEvent[]; attempts: number };

/**
 * A Backstage `AnalyticsApi` that sends events to the catalog-pipelines usage collector.
 *
 * - `captureEvent` only appends to a queue and returns: nothing it does waits for the network or
 *   for the identity API, so it never blocks the UI;
 * - events go in batches (`batchSize`, or after `flushIntervalMs`), one request at a time, each
 *   with `Authorization: Bearer <the signed-in user's Backstage token>` from
 *   `identityApi.getCredentials()`; the collector verifies the token and attributes the events to
 *   its subject;
 * - a batch that fails for a reason a retry can fix (network, 401 with a fresh token, 429, 5xx) is
 *   retried with exponential backoff and jitter, honouring `Retry-After`; one the collector refuses
 *   for its content (400, 413, 422) is dropped, since resending cannot help;
 * - when the page is hidden or unloaded, what is still queued or waiting for a retry is sent with
 *   `navigator.sendBeacon`. A beacon cannot carry an Authorization header, so its body carries the
 *   token (`{"token": …, "events": […]}`, `text/plain` so no preflight is needed) and the collector
 *   verifies it exactly like the header. Events sent twice (a beacon racing a request in flight) are
 *   deduplicated by `eventId` when the collector compacts the day.
 */
export class CollectorAnalyticsApi implements AnalyticsApi {
  private readonly url: string;
  private readonly identityApi: Pick<IdentityApi, 'getCredentials'>;
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly maxAttempts: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly maxQueue: number;
  private readonly maxBeaconBytes: number;
  private readonly fetchFn?: typeof fetch;
  private readonly beacon?: (url: string, body: string) => boolean;
  private readonly schedule: (fn: () => void, ms: number) => unknown;
  private readonly cancel: (handle: unknown) => void;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly newId: () => string;
  private readonly logger: Logger;
  private readonly sessionId: string;

  private queue: CollectorEvent[] = [];
  private retrying: Batch | undefined;
  private inFlight: Batch | undefined;
  private timer: unknown;
  private sending = false;
  private token: string | undefined;
  private idle: Promise<void> = Promise.resolve();
  /** Counters, for tests and debugging. */
  readonly stats = { captured: 0, sent: 0, dropped: 0, beaconed: 0, retries: 0 };

  static fromConfig(config: ConfigApi, deps: { identityApi: Pick<IdentityApi, 'getCredentials'> }): CollectorAnalyticsApi {
    const section = config.getConfig('app.analytics.catalogPipelines');
    return new CollectorAnalyticsApi({
      collectorUrl: section.getString('collectorUrl'),
      identityApi: deps.identityApi,
      batchSize: section.getOptionalNumber('batchSize'),
      flushIntervalMs: section.getOptionalNumber('flushIntervalMs'),
    });
  }

  constructor(options: CollectorAnalyticsOptions) {
    this.url = options.collectorUrl.replace(/\/+$/, '') + '/events';
    this.identityApi = options.identityApi;
    this.batchSize = Math.min(MAX_BATCH, Math.max(1, options.batchSize ?? 25));
    this.flushIntervalMs = options.flushIntervalMs ?? 5000;
    this.maxAttempts = options.maxAttempts ?? 6;
    this.backoffBaseMs = options.backoffBaseMs ?? 1000;
    this.backoffMaxMs = options.backoffMaxMs ?? 60_000;
    this.maxQueue = options.maxQueue ?? 1000;
    this.maxBeaconBytes = options.maxBeaconBytes ?? 60_000;
    const g = globalThis as any;
    this.fetchFn = options.fetch ?? (typeof g.fetch === 'function' ? g.fetch.bind(g) : undefined);
    this.beacon =
      options.sendBeacon ??
      (typeof g.navigator?.sendBeacon === 'function' ? (u: string, b: string) => g.navigator.sendBeacon(u, b) : undefined);
    this.schedule = options.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
    this.cancel = options.clearTimeout ?? (h => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.newId = options.newId ?? (() => g.crypto.randomUUID());
    this.logger = options.logger ?? { warn: (m: string) => g.console?.warn?.(m) };
    this.sessionId = this.newId();
    const lifecycle = options.lifecycle ?? browserLifecycle();
    lifecycle?.onHide(() => this.sendWithBeacon());
    this.refreshToken();
  }

  captureEvent(event: AnalyticsEvent): void {
    try {
      this.stats.captured += 1;
      const out: CollectorEvent = {
        eventId: this.newId(),
        timestamp: new Date(this.now()).toISOString(),
        sessionId: this.sessionId,
        action: event.action,
        subject: event.subject,
        context: event.context,
      };
      if (typeof event.value === 'number' && Number.isFinite(event.value)) out.value = event.value;
      if (event.attributes && Object.keys(event.attributes).length) out.attributes = event.attributes;
      this.queue.push(out);
      const over = this.pending() - this.maxQueue;
      if (over > 0) {
        this.queue.splice(0, over);
        this.stats.dropped += over;
      }
      if (this.queue.length >= this.batchSize) this.kick(0);
      else if (this.timer === undefined) this.kick(this.flushIntervalMs);
    } catch (e) {
      // Analytics must never break the page.
      this.logger.warn(`catalog-pipelines analytics: event not captured: ${String(e)}`);
    }
  }

  /** Send everything queued now; resolves when the queue is empty or waiting for a retry. */
  async flush(): Promise<void> {
    this.kick(0);
    await this.idle;
  }

  /** Events not yet acknowledged by the collector. */
  pending(): number {
    return this.queue.length + (this.retrying?.events.length ?? 0) + (this.inFlight?.events.length ?? 0);
  }

  private kick(delayMs: number): void {
    if (this.timer !== undefined) {
      if (delayMs > 0) return;
      this.cancel(this.timer);
    }
    if (delayMs <= 0) {
      this.timer = undefined;
      this.startSending();
      return;
    }
    this.timer = this.schedule(() => {
      this.timer = undefined;
      this.startSending();
    }, delayMs);
  }

  /** The one sender: at most one request at a time, so batches arrive in order. */
  private startSending(resume?: Batch): void {
    if (this.sending) return;
    this.sending = true;
    this.idle = (async () => {
      if (resume && !(await this.send(resume))) return;
      await this.drain();
    })().finally(() => {
      this.sending = false;
    });
  }

  private async drain(): Promise<void> {
    while (!this.retrying && this.queue.length) {
      const batch: Batch = { events: this.queue.splice(0, this.batchSize), attempts: 0 };
      const ok = await this.send(batch);
      if (!ok) return; // waiting for a retry (it restarts the loop)
    }
  }

  /** One attempt; true when the batch is done (sent or given up), false when a retry is scheduled. */
  private async send(batch: Batch): Promise<boolean> {
    batch.attempts += 1;
    this.inFlight = batch;
    let retryAfterMs: number | undefined;
    try {
      const token = await this.freshToken();
      if (!this.fetchFn) throw new Error('no fetch');
      const headers: Record<string, string> = { 'Content-Type': 'application/json' };
      if (token) headers.Authorization = `Bearer ${token}`;
      const response = await this.fetchFn(this.url, { method: 'POST', headers, body: JSON.stringify(batch.events), credentials: 'omit' });
      if (response.ok) {
        this.stats.sent += batch.events.length;
        return this.done(batch);
      }
      if ([400, 413, 422].includes(response.status)) {
        this.logger.warn(`catalog-pipelines analytics: the collector refused ${batch.events.length} event(s) (${response.status}); dropped`);
        this.stats.dropped += batch.events.length;
        return this.done(batch);
      }
      if (response.status === 401) this.token = undefined; // an expired token: ask for a fresh one
      const header = response.headers.get('Retry-After');
      if (header && /^\d+$/.test(header.trim())) retryAfterMs = Number(header.trim()) * 1000;
    } catch {
      // network error: retried below
    }
    this.inFlight = undefined;
    if (batch.attempts >= this.maxAttempts) {
      this.logger.warn(`catalog-pipelines analytics: ${batch.events.length} event(s) dropped after ${batch.attempts} attempts`);
      this.stats.dropped += batch.events.length;
      return true;
    }
    this.stats.retries += 1;
    this.retrying = batch;
    const backoff = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** (batch.attempts - 1));
    const delay = Math.max(retryAfterMs ?? 0, backoff * (0.5 + this.random() / 2));
    const retry = () => {
      if (this.retrying !== batch) return; // a beacon took it meanwhile
      if (this.sending) {
        this.schedule(retry, 10);
        return;
      }
      this.retrying = undefined;
      this.startSending(batch);
    };
    this.schedule(retry, delay);
    return false;
  }

  private done(batch: Batch): true {
    if (this.inFlight === batch) this.inFlight = undefined;
    return true;
  }

  private async freshToken(): Promise<string | undefined> {
    if (this.token && !expiresWithin(this.token, 60, this.now())) return this.token;
    const { token } = await this.identityApi.getCredentials();
    this.token = token;
    return token;
  }

  /** Keep a current token at hand: the beacon (page hide) cannot wait for the identity API. */
  private refreshToken(): void {
    this.freshToken().catch(() => undefined);
  }

  /**
   * Page hidden or unloading: hand everything not yet acknowledged to `sendBeacon`, with the cached
   * token in the body. What the browser refuses (over its beacon quota) stays queued.
   */
  private sendWithBeacon(): void {
    const token = this.token;
    if (!this.beacon || !token || expiresWithin(token, 0, this.now())) {
      this.kick(0);
      return;
    }
    const events = [...(this.inFlight?.events ?? []), ...(this.retrying?.events ?? []), ...this.queue];
    if (!events.length) return;
    const left: CollectorEvent[] = [];
    let i = 0;
    while (i < events.length) {
      let chunk = events.slice(i, i + MAX_BATCH);
      let body = JSON.stringify({ token, events: chunk });
      while (chunk.length > 1 && utf8Length(body) > this.maxBeaconBytes) {
        chunk = chunk.slice(0, Math.ceil(chunk.length / 2));
        body = JSON.stringify({ token, events: chunk });
      }
      let queued = false;
      try {
        queued = this.beacon(this.url, body);
      } catch {
        queued = false;
      }
      if (queued) this.stats.beaconed += chunk.length;
      else left.push(...chunk);
      i += chunk.length;
    }
    // In-flight events may still be acknowledged by their request too: the collector deduplicates.
    this.retrying = undefined;
    const inFlight = new Set(this.inFlight?.events.map(e => e.eventId));
    this.queue = left.filter(e => !inFlight.has(e.eventId));
  }
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

/** True when the JWT's `exp` is within `seconds` of now (or unreadable). Not a verification. */
export function expiresWithin(token: string, seconds: number, nowMs: number): boolean {
  try {
    const payload = token.split('.')[1];
    const json = JSON.parse(decodeBase64Url(payload)) as { exp?: unknown };
    return typeof json.exp !== 'number' || json.exp * 1000 <= nowMs + seconds * 1000;
  } catch {
    return true;
  }
}

function decodeBase64Url(value: string): string {
  const base64 = value.replace(/-/g, '+').replace(/_/g, '/');
  const g = globalThis as any;
  const binary: string = g.atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
  return new TextDecoder().decode(Uint8Array.from(binary, c => c.charCodeAt(0)));
}

function browserLifecycle(): PageLifecycle | undefined {
  const g = globalThis as any;
  if (!g.window?.addEventListener || !g.document) return undefined;
  return {
    onHide(listener) {
      // `pagehide` for unloads (and the back/forward cache), `visibilitychange` for tabs switched
      // away from or closed on mobile, where unload events may never fire.
      g.window.addEventListener('pagehide', listener);
      g.document.addEventListener('visibilitychange', () => {
        if (g.document.visibilityState === 'hidden') listener();
      });
    },
  };
}
