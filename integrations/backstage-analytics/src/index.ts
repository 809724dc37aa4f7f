/**
 * Backstage analytics module for the catalog-pipelines usage collector.
 *
 * In `packages/app/src/apis.ts`:
 *
 * ```ts
 * import { analyticsApiRef, configApiRef, createApiFactory, identityApiRef } from '@backstage/core-plugin-api';
 * import { CollectorAnalyticsApi } from '@catalog-pipelines/backstage-analytics';
 *
 * createApiFactory({
 *   api: analyticsApiRef,
 *   deps: { configApi: configApiRef, identityApi: identityApiRef },
 *   factory: ({ configApi, identityApi }) => CollectorAnalyticsApi.fromConfig(configApi, { identityApi }),
 * }),
 * ```
 */
export { CollectorAnalyticsApi, expiresWithin } from './CollectorAnalyticsApi.js';
export type { CollectorAnalyticsOptions, CollectorEvent, Logger, PageLifecycle } from './CollectorAnalyticsApi.js';
