// Runs commands through a live rdev and follows their output with every
// subscription client a front end uses: graphql-ws (graphql-transport-ws),
// subscriptions-transport-ws (legacy graphql-ws), graphql-sse and Apollo
// Client. Each check runs a command printing 10,000 numbered lines and
// requires every line exactly once, in order, then CommandFinished.
// Usage: RDEV_URL=… RDEV_TOKEN=… RDEV_PROJECT=demo node commands.mjs
// Prints "ok <check>" per passed check; exits 1 on the first failure.
import { createClient as createWsClient } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import { SubscriptionClient } from 'subscriptions-transport-ws';
import { ApolloClient, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { HttpLink } from '@apollo/client/link/http';
import WebSocket from 'ws';

const base = process.env.RDEV_URL;
const token = process.env.RDEV_TOKEN;
const project = process.env.RDEV_PROJECT || 'demo';
const endpoint = `${base}/graphql`;
const wsURL = endpoint.replace(/^http/, 'ws');
const LINES = 10000;
const expected = Array.from({ length: LINES }, (_, i) => `${i + 1}\n`).join('');

const outputQuery = `subscription Output($id: ID!, $after: Int) {
  commandOutput(commandId: $id, afterSeq: $after) {
    __typename
    ... on OutputChunk { seq stream data }
    ... on CommandFinished { status exitCode lastSeq truncated durationMs }
  }
}`;

function check(name, cond, detail) {
  if (!cond) {
    console.error(`FAIL ${name}: ${typeof detail === 'string' ? detail : JSON.stringify(detail).slice(0, 2000)}`);
    process.exit(1);
  }
  console.log(`ok ${name}`);
}

async function graphql(query, variables) {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return res.json();
}

async function execute(argv, extra = {}) {
  const r = await graphql(
    `mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id status } } }`,
    { in: { projectId: project, argv, ...extra } },
  );
  if (r.errors) throw new Error(JSON.stringify(r.errors));
  return r.data.executeCommand.command;
}

// verify checks one subscription's events: contiguous seqs after `after`,
// the expected text, and a final CommandFinished.
function verify(name, events, after, text) {
  const chunks = events.filter((e) => e.__typename === 'OutputChunk');
  const fin = events[events.length - 1];
  let seq = after;
  for (const c of chunks) {
    if (c.seq !== seq + 1) return check(name, false, `seq ${c.seq} after ${seq}`);
    seq = c.seq;
  }
  const got = chunks.map((c) => c.data).join('');
  check(name, got === text && fin?.__typename === 'CommandFinished' && fin.status === 'SUCCEEDED'
    && fin.exitCode === 0 && fin.lastSeq === seq && chunks.every((c) => c.stream === 'STDOUT'),
  { length: got.length, want: text.length, fin, head: got.slice(0, 60) });
}

// follow collects a subscription's events until it completes.
function follow(subscribe) {
  return new Promise((resolve, reject) => {
    const events = [];
    subscribe({
      next: (v) => {
        if (v.errors) reject(new Error(JSON.stringify(v.errors)));
        else events.push(v.data.commandOutput);
      },
      error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))),
      complete: () => resolve(events),
    });
  });
}

async function viaGraphqlWs() {
  const cmd = await execute(['seq', '1', String(LINES)]);
  const client = createWsClient({ url: wsURL, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  const events = await follow((sink) => client.subscribe({ query: outputQuery, variables: { id: cmd.id, after: 0 } }, sink));
  await client.dispose();
  verify('graphql-ws (graphql-transport-ws) receives 10,000 lines in order', events, 0, expected);
}

async function viaSubscriptionsTransportWs() {
  const cmd = await execute(['seq', '1', String(LINES)]);
  const client = new SubscriptionClient(wsURL, { connectionParams: { authorization: `Bearer ${token}` }, reconnect: false }, WebSocket);
  const events = await follow((sink) => client.request({ query: outputQuery, variables: { id: cmd.id, after: 0 } }).subscribe(sink));
  client.close();
  verify('subscriptions-transport-ws (legacy graphql-ws) receives 10,000 lines in order', events, 0, expected);
}

async function viaGraphqlSse() {
  const cmd = await execute(['seq', '1', String(LINES)]);
  const client = createSseClient({ url: endpoint, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  const events = await follow((sink) => client.subscribe({ query: outputQuery, variables: { id: cmd.id, after: 0 } }, sink));
  client.dispose();
  verify('graphql-sse receives 10,000 lines in order', events, 0, expected);
}

async function viaApollo() {
  const wsClient = createWsClient({ url: wsURL, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  const apollo = new ApolloClient({
    link: new GraphQLWsLink(wsClient),
    cache: new InMemoryCache({ possibleTypes: { CommandOutputEvent: ['OutputChunk', 'CommandFinished'] } }),
  });
  const http = new ApolloClient({
    link: new HttpLink({ uri: endpoint, headers: { authorization: `Bearer ${token}` }, fetch }),
    cache: new InMemoryCache(),
  });
  const { data } = await http.mutate({
    mutation: gql`mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id status } } }`,
    variables: { in: { projectId: project, argv: ['seq', '1', String(LINES)] } },
  });
  const id = data.executeCommand.command.id;
  const events = await follow((sink) => apollo.subscribe({ query: gql(outputQuery), variables: { id, after: 0 } }).subscribe(sink));
  await wsClient.dispose();
  verify('Apollo Client (GraphQLWsLink) receives 10,000 lines in order', events, 0, expected);
}

// resume drops the connection once line 5,000 has arrived and resubscribes
// with afterSeq: the two halves together are the whole output, once.
async function resume() {
  const cmd = await execute(['sh', '-c', `seq 1 ${LINES / 2}; sleep 0.5; seq ${LINES / 2 + 1} ${LINES}`]);
  const first = createWsClient({ url: wsURL, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  const head = await new Promise((resolve, reject) => {
    const events = [];
    let text = '';
    const stop = first.subscribe({ query: outputQuery, variables: { id: cmd.id, after: 0 } }, {
      next: (v) => {
        const e = v.data.commandOutput;
        events.push(e);
        text += e.data ?? '';
        if (text.includes('\n5000\n')) {
          stop();
          first.dispose().then(() => resolve(events));
        }
      },
      error: reject,
      complete: () => reject(new Error('finished before line 5000')),
    });
  });
  const lastSeq = head[head.length - 1].seq;
  const second = createWsClient({ url: wsURL, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  const tail = await follow((sink) => second.subscribe({ query: outputQuery, variables: { id: cmd.id, after: lastSeq } }, sink));
  await second.dispose();
  const headText = head.map((e) => e.data).join('');
  verify('a client that disconnects at line 5,000 and resumes with afterSeq gets exactly the rest', tail, lastSeq, expected.slice(headText.length));
  check('the resumed halves join to the whole output', headText + tail.filter((e) => e.data).map((e) => e.data).join('') === expected, '');
}

async function badInput() {
  const cases = [
    [{ projectId: 'no-such-project', argv: ['true'] }, 'NOT_FOUND'],
    [{ projectId: project, argv: [] }, 'INVALID_INPUT'],
    [{ projectId: project, argv: ['true'], env: [{ name: '1BAD', value: 'x' }] }, 'INVALID_INPUT'],
    [{ projectId: project, argv: ['true'], timeoutSeconds: -5 }, 'INVALID_INPUT'],
    [{ projectId: project, argv: ['true'], timeoutSeconds: 10_000_000 }, 'INVALID_INPUT'],
  ];
  for (const [input, code] of cases) {
    const r = await graphql(`mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id } } }`, { in: input });
    check(`executeCommand ${JSON.stringify(input)} → ${code}`, r.errors?.[0]?.extensions?.code === code, r);
  }
  const r = await graphql(`mutation { cancelCommand(input: {id: "0000000000000000"}) { command { id } } }`);
  check('cancelCommand of an unknown command → NOT_FOUND', r.errors?.[0]?.extensions?.code === 'NOT_FOUND', r);
}

await viaGraphqlWs();
await viaSubscriptionsTransportWs();
await viaGraphqlSse();
await viaApollo();
await resume();
await badInput();
process.exit(0);
