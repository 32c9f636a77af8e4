// Drives a running rdev with real GraphQL clients from npm: plain fetch,
// graphql-ws (graphql-transport-ws over WebSocket) and graphql-sse.
// Usage: RDEV_URL=http://127.0.0.1:8080 RDEV_TOKEN=rdev_… node clients.mjs
// Prints one "ok <check>" line per passed check; exits 1 on the first failure.
import { createClient as createWsClient } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import WebSocket from 'ws';

const base = process.env.RDEV_URL;
const token = process.env.RDEV_TOKEN;
const endpoint = `${base}/graphql`;
const projectsQuery = '{ projects { nodes { id status } } }';

function check(name, cond, detail) {
  if (!cond) {
    console.error(`FAIL ${name}: ${JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok ${name}`);
}

function once(client, query) {
  return new Promise((resolve) => {
    let result;
    client.subscribe({ query }, {
      next: (v) => { result = v; },
      error: (e) => resolve({ error: e }),
      complete: () => resolve(result),
    });
  });
}

async function main() {
  // Plain HTTP POST, as curl or a script would.
  let res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: projectsQuery }),
  });
  let body = await res.json();
  check('fetch lists projects', res.status === 200 && body.data?.projects?.nodes?.some((p) => p.id === 'demo'), body);

  res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer rdev_bad' },
    body: JSON.stringify({ query: projectsQuery }),
  });
  body = await res.json();
  check('fetch refuses a bad key', res.status === 401 && body.errors?.[0]?.extensions?.code === 'UNAUTHENTICATED', body);

  // graphql-ws, authenticating in connection_init.
  const ws = createWsClient({
    url: endpoint.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  const viaWs = await once(ws, '{ viewer { id name scopes } }');
  check('graphql-ws authenticates in connection_init', viaWs?.data?.viewer?.scopes?.includes('ADMIN'), viaWs);
  const projectsWs = await once(ws, projectsQuery);
  check('graphql-ws lists projects', projectsWs?.data?.projects?.nodes?.length > 0, projectsWs);
  await ws.dispose();

  // graphql-ws with a bad key: the server refuses the connection.
  const closed = await new Promise((resolve) => {
    const bad = createWsClient({
      url: endpoint.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: 'Bearer rdev_nope' },
      retryAttempts: 0,
      on: { closed: (e) => resolve(e) },
    });
    bad.subscribe({ query: '{ viewer { id } }' }, { next() {}, error() {}, complete() {} });
  });
  check('graphql-ws refuses a bad key', closed?.code === 4403 || closed?.code === 4400, { code: closed?.code, reason: closed?.reason });

  // graphql-ws without a key: the connection opens, protected fields refuse.
  const anon = createWsClient({ url: endpoint.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
  const anonResult = await once(anon, projectsQuery);
  const anonErrors = anonResult?.errors ?? anonResult?.error;
  check('graphql-ws without a key gets UNAUTHENTICATED',
    JSON.stringify(anonErrors ?? '').includes('UNAUTHENTICATED'), anonResult);
  await anon.dispose();

  // graphql-sse (distinct connections mode), authenticating with a header.
  const sse = createSseClient({ url: endpoint, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  const viaSse = await once(sse, projectsQuery);
  check('graphql-sse lists projects', viaSse?.data?.projects?.nodes?.some((p) => p.id === 'demo'), viaSse);
  sse.dispose();
}

main().catch((e) => {
  console.error('FAIL', e);
  process.exit(1);
});
