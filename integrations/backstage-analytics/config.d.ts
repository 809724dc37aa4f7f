// The app-config this module reads (Backstage loads it through package.json's `configSchema`;
// `@visibility frontend` makes the values reach the browser).
export interface Config {
  app?: {
    analytics?: {
      catalogPipelines?: {
        /**
         * The usage collector's base URL; events are posted to `<collectorUrl>/events`.
         * @visibility frontend
         */
        collectorUrl: string;
        /**
         * Events per request (1-100, default 25).
         * @visibility frontend
         */
        batchSize?: number;
        /**
         * Send a partial batch after this many milliseconds (default 5000).
         * @visibility frontend
         */
        flushIntervalMs?: number;
      };
    };
  };
}
