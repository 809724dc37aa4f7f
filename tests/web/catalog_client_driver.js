'use strict';

// Drives the real @backstage/catalog-client against one or more catalog servers and prints one
// JSON document with every answer: {"<target>": {"<case id>": {"ok": ...} | {"error": ...}}}.
// Input (stdin): {"targets": {"name": {"baseUrl", "token"}}, "cases": [{"id", "op", "args"}]}.
// Used by tests/web/test_catalog_api_differential.py (tests/catalog_client.py installs the
// package into .data/catalog-client and runs this file from there).

const { CatalogClient, CATALOG_FILTER_EXISTS } = require('@backstage/catalog-client');

// JSON cannot carry the client's "key exists" symbol: the string below stands for it.
const EXISTS = '$exists';

function revive(value) {
  if (value === EXISTS) return CATALOG_FILTER_EXISTS;
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)]));
  }
  return value;
}

function describeError(e) {
  return {
    name: e?.body?.error?.name ?? e?.name,
    message: e?.body?.error?.message ?? e?.message,
    statusCode: e?.body?.response?.statusCode ?? e?.response?.status,
    bodyKeys: e?.body ? Object.keys(e.body).sort() : [],
  };
}

async function walk(client, args, token) {
  // Forward through every page, then back from the last page through every prevCursor.
  const forward = [];
  let response = await client.queryEntities(args, { token });
  forward.push(response);
  while (response.pageInfo.nextCursor && forward.length < 1000) {
    response = await client.queryEntities({ cursor: response.pageInfo.nextCursor, limit: args.limit, fields: args.fields }, { token });
    forward.push(response);
  }
  const backward = [];
  while (response.pageInfo.prevCursor && backward.length < 1000) {
    response = await client.queryEntities({ cursor: response.pageInfo.prevCursor, limit: args.limit, fields: args.fields }, { token });
    backward.push(response);
  }
  const shape = r => ({
    items: r.items,
    totalItems: r.totalItems,
    hasNext: Boolean(r.pageInfo.nextCursor),
    hasPrev: Boolean(r.pageInfo.prevCursor),
  });
  return { forward: forward.map(shape), backward: backward.map(shape) };
}

// CatalogClient has no by-uid read of its own; its generated API client (the same one its other
// methods use) has, and `requestOptional` turns a 404 into undefined as for by-name.
async function getEntityByUid(client, uid, token) {
  return client.requestOptional(await client.apiClient.getEntityByUid({ path: { uid } }, { token }));
}

async function run(client, c, token) {
  const args = revive(c.args ?? {});
  switch (c.op) {
    case 'getEntities':
      return client.getEntities(args, { token });
    case 'queryEntities':
      return client.queryEntities(args, { token });
    case 'walk':
      return walk(client, args, token);
    case 'getEntitiesByRefs':
      return client.getEntitiesByRefs(args, { token });
    case 'getEntityByRef':
      return (await client.getEntityByRef(args.entityRef, { token })) ?? null;
    case 'getEntityByUidOf': {
      // by-uid needs the server's own uid: look the entity up first, then fetch it by uid twice.
      const entity = await client.getEntityByRef(args.entityRef, { token });
      const again = await getEntityByUid(client, entity.metadata.uid, token);
      const third = await client.getEntityByRef(args.entityRef, { token });
      return {
        sameEntity: JSON.stringify(again) === JSON.stringify(entity),
        uidStable: third.metadata.uid === entity.metadata.uid,
        etagStable: third.metadata.etag === entity.metadata.etag,
        hasUid: typeof entity.metadata.uid === 'string' && entity.metadata.uid.length > 0,
        hasEtag: typeof entity.metadata.etag === 'string' && entity.metadata.etag.length > 0,
      };
    }
    case 'getEntityByUid':
      return (await getEntityByUid(client, args.uid, token)) ?? null;
    case 'getEntityAncestors':
      return client.getEntityAncestors(args, { token });
    case 'getEntityFacets':
      return client.getEntityFacets(args, { token });
    case 'getLocationByEntity':
      return (await client.getLocationByEntity(args.entityRef, { token })) ?? null;
    case 'removeEntityByUid':
      return client.removeEntityByUid(args.uid, { token });
    default:
      throw new Error(`unknown op ${c.op}`);
  }
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const { targets, cases } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const out = {};
  for (const [name, target] of Object.entries(targets)) {
    const client = new CatalogClient({
      discoveryApi: { getBaseUrl: async () => `${target.baseUrl}/api/catalog` },
    });
    out[name] = {};
    for (const c of cases) {
      try {
        const result = await run(client, c, target.token);
        out[name][c.id] = { ok: result === undefined ? null : result };
      } catch (e) {
        out[name][c.id] = { error: describeError(e) };
      }
    }
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
