// Persisted queries through Apollo Client's persisted-query link, against a
// running rdev. RDEV_MODE picks the run:
//   apq       automatic persisted queries: by hash, not found, retried with
//             the query; then by hash alone, by POST and by GET
//   manifest  writes an Apollo persisted-query manifest of the operations the
//             trusted run uses to RDEV_MANIFEST (no server needed)
//   trusted   against a server started with that manifest and
//             RDEV_TRUSTED_DOCUMENTS_ONLY=true: manifest operations work by
//             hash alone, others are refused, over HTTP, WebSocket and SSE
// Usage: RDEV_URL=… RDEV_TOKEN=… RDEV_MODE=apq node persisted.mjs
// Prints "ok <check>" per passed check; exits 1 on the first failure.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { ApolloClient, InMemoryCache, gql } from '@apollo/client';
import { HttpLink } from '@apollo/client/link/http';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { createClient as createWsClient } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import WebSocket from 'ws';

const base = process.env.RDEV_URL || 'http://manifest.invalid'; // manifest mode needs no server
const token = process.env.RDEV_TOKEN;
const endpoint = `${base}/graphql`;
const sha256 = (s) => createHash('sha256').update(s).digest('hex');

const viewerQuery = gql`query Viewer { viewer { id name } }`;
const healthQuery = gql`query Health { health { ready } }`;
const statusSubscription = 'subscription Status { projectStatus(projectId: "demo") { id status } }';

function check(name, cond, detail) {
  if (!cond) {
    console.error(`FAIL ${name}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok ${name}`);
}

// client returns an Apollo client with the persisted-query link, and the
// requests it sent: method, whether the query text was in it, and its hash.
function client(options = {}, fetchImpl = fetch) {
  const sent = [];
  const recordingFetch = async (url, init) => {
    const u = new URL(url);
    let body = {};
    if (init.method === 'GET') {
      body.query = u.searchParams.get('query') || undefined;
      body.extensions = JSON.parse(u.searchParams.get('extensions') || '{}');
    } else {
      body = JSON.parse(init.body);
    }
    sent.push({ method: init.method, query: body.query, hash: body.extensions?.persistedQuery?.sha256Hash });
    return fetchImpl(url, init);
  };
  const link = new PersistedQueryLink({ sha256, ...options }).concat(
    new HttpLink({ uri: endpoint, headers: { authorization: `Bearer ${token}` }, fetch: recordingFetch }),
  );
  return { apollo: new ApolloClient({ link, cache: new InMemoryCache() }), sent };
}

async function apq() {
  const a = client();
  let r = await a.apollo.query({ query: viewerQuery, fetchPolicy: 'network-only' });
  check('apq: the first query succeeds', r.data?.viewer?.name === 'persisted', r);
  check('apq: sent by hash alone, then retried with the query after PersistedQueryNotFound',
    a.sent.length === 2 && !a.sent[0].query && a.sent[0].hash && a.sent[1].query && a.sent[1].hash === a.sent[0].hash, a.sent);
  check('apq: the hash is the SHA-256 of the query sent', a.sent[1].hash === sha256(a.sent[1].query), a.sent);

  const b = client(); // a new client knows nothing: the server remembers
  r = await b.apollo.query({ query: viewerQuery, fetchPolicy: 'network-only' });
  check('apq: a second client is answered by hash alone',
    r.data?.viewer?.name === 'persisted' && b.sent.length === 1 && !b.sent[0].query, { r, sent: b.sent });

  const g = client({ useGETForHashedQueries: true });
  r = await g.apollo.query({ query: healthQuery, fetchPolicy: 'network-only' });
  check('apq: GET by hash, not found, retried with the query',
    r.data?.health?.ready === true && g.sent.length === 2 && g.sent[0].method === 'GET' && !g.sent[0].query, { r, sent: g.sent });
  const g2 = client({ useGETForHashedQueries: true });
  r = await g2.apollo.query({ query: healthQuery, fetchPolicy: 'network-only' });
  check('apq: GET by hash alone', r.data?.health?.ready === true && g2.sent.length === 1 && g2.sent[0].method === 'GET', g2.sent);
}

// manifest writes the manifest of the queries as Apollo Client sends them
// (with the __typename fields its cache adds), captured without a server.
async function manifest() {
  const ops = [];
  const capture = async (url, init) => {
    const body = JSON.parse(init.body);
    if (body.query) {
      ops.push({ id: sha256(body.query), name: body.operationName, type: 'query', body: body.query });
      return new Response(JSON.stringify({ data: { viewer: { __typename: 'APIKey', id: 'x', name: 'x' } } }), { headers: { 'content-type': 'application/json' } });
    }
    return new Response(JSON.stringify({ errors: [{ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }] }), { headers: { 'content-type': 'application/json' } });
  };
  await client({}, capture).apollo.query({ query: viewerQuery });
  ops.push({ id: sha256(statusSubscription), name: 'Status', type: 'subscription', body: statusSubscription });
  writeFileSync(process.env.RDEV_MANIFEST, JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 1, operations: ops }, null, 2));
  check('manifest: written', ops.length === 2, ops);
}

function first(subscribe) {
  return new Promise((resolve) => {
    let done = false;
    const unsubscribe = subscribe({
      next: (v) => { if (!done) { done = true; resolve(v); unsubscribe(); } },
      error: (e) => { if (!done) { done = true; resolve({ error: e }); } },
      complete: () => { if (!done) { done = true; resolve({ completed: true }); } },
    });
  });
}

function codeOf(result) {
  const errs = result?.errors || result?.error?.errors || (Array.isArray(result?.error) ? result.error : null) || [];
  return errs[0]?.extensions?.code;
}

async function trusted() {
  const a = client();
  let r = await a.apollo.query({ query: viewerQuery, fetchPolicy: 'network-only' });
  check('trusted: a manifest operation is answered by hash alone',
    r.data?.viewer?.name === 'persisted' && a.sent.length === 1 && !a.sent[0].query, { r, sent: a.sent });

  const b = client();
  let err;
  try {
    await b.apollo.query({ query: healthQuery, fetchPolicy: 'network-only' });
  } catch (e) {
    err = e;
  }
  check('trusted: an operation outside the manifest is refused with PERSISTED_QUERY_NOT_TRUSTED',
    err?.errors?.[0]?.extensions?.code === 'PERSISTED_QUERY_NOT_TRUSTED', { message: err?.message, errors: err?.errors, sent: b.sent });

  const ws = createWsClient({ url: endpoint.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0, lazyCloseTimeout: 5000 });
  r = await first((sink) => ws.subscribe({ query: statusSubscription }, sink));
  check('trusted: a manifest subscription runs over WebSocket', r.data?.projectStatus?.id === 'demo', r);
  r = await first((sink) => ws.subscribe({ query: 'subscription { projectStatus { id } }' }, sink));
  check('trusted: another subscription is refused over WebSocket', codeOf(r) === 'PERSISTED_QUERY_NOT_TRUSTED', r);
  r = await first((sink) => ws.subscribe({ query: '', extensions: { persistedQuery: { version: 1, sha256Hash: sha256(statusSubscription) } } }, sink));
  check('trusted: a manifest subscription by hash alone over WebSocket', r.data?.projectStatus?.id === 'demo', r);
  await ws.dispose();

  const sse = createSseClient({ url: endpoint, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  r = await first((sink) => sse.subscribe({ query: statusSubscription }, sink));
  check('trusted: a manifest subscription runs over SSE', r.data?.projectStatus?.id === 'demo', r);
  r = await first((sink) => sse.subscribe({ query: '', extensions: { persistedQuery: { version: 1, sha256Hash: sha256(statusSubscription) } } }, sink));
  check('trusted: a manifest subscription by hash alone over SSE', r.data?.projectStatus?.id === 'demo', r);
  r = await first((sink) => sse.subscribe({ query: 'subscription { projectStatus { id } }' }, sink));
  check('trusted: another subscription is refused over SSE', codeOf(r) === 'PERSISTED_QUERY_NOT_TRUSTED', r);
  sse.dispose();
}

const modes = { apq, manifest, trusted };
modes[process.env.RDEV_MODE]().then(() => process.exit(0), (e) => {
  console.error('FAIL', e?.stack || e);
  process.exit(1);
});
