// Holds connections open with one key against each server in RDEV_URLS
// (comma-separated) and reports, one line each, what happens to them, so the
// test can end the key and watch: graphql-ws, subscriptions-transport-ws
// (legacy graphql-ws) and graphql-sse subscriptions to projectStatus, and an
// idle graphql-ws connection.
//
//   ready <label>                   the subscription's first event arrived
//   ended <label> <code>            it ended with an error of extensions.code
//   closed <label> <close code>     the server closed the WebSocket
//   complete <label>                it completed
//
// Usage: RDEV_URLS=… RDEV_TOKEN=… RDEV_PROJECT=… node revoked.mjs; it exits
// when every connection has ended, or is killed by the test.
import { createClient as createWsClient } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import { SubscriptionClient } from 'subscriptions-transport-ws';
import WebSocket from 'ws';

const token = process.env.RDEV_TOKEN;
const project = process.env.RDEV_PROJECT || 'demo';
const query = `subscription($p: ID) { projectStatus(projectId: $p) { id status } }`;
const say = (line) => process.stdout.write(line + '\n');

// errorCode returns the extensions.code of the first error in whatever a
// client hands its error callback.
function errorCode(err) {
  const list = Array.isArray(err) ? err : err?.errors ?? [err];
  return list[0]?.extensions?.code ?? `none:${JSON.stringify(err)?.slice(0, 200)}`;
}

// sink reports one subscription's events under label.
function sink(label, resolve) {
  let ready = false;
  return {
    next: (r) => {
      if (r.errors) {
        say(`ended ${label} ${errorCode(r.errors)}`);
        return;
      }
      if (!ready) {
        ready = true;
        say(`ready ${label}`);
      }
    },
    error: (err) => {
      say(`ended ${label} ${errorCode(err)}`);
      resolve();
    },
    complete: () => {
      say(`complete ${label}`);
      resolve();
    },
  };
}

// recordingSocket is a WebSocket that reports the code it closed with.
function recordingSocket(label) {
  return class extends WebSocket {
    constructor(...args) {
      super(...args);
      this.on('close', (code) => say(`closed ${label} ${code}`));
    }
  };
}

const ends = [];
for (const [i, base] of (process.env.RDEV_URLS || '').split(',').entries()) {
  const endpoint = `${base}/graphql`;
  const wsURL = endpoint.replace(/^http/, 'ws');
  const name = (proto) => `${proto}@${i}`;

  const ws = createWsClient({
    url: wsURL, webSocketImpl: recordingSocket(name('graphql-ws')), retryAttempts: 0,
    // Left to itself, a lazy client closes the socket as soon as its last
    // subscription ends, racing the server's close.
    lazyCloseTimeout: 60000,
    connectionParams: { authorization: `Bearer ${token}` },
  });
  ends.push(new Promise((resolve) => ws.subscribe({ query, variables: { p: project } }, sink(name('graphql-ws'), resolve))));

  const legacy = new SubscriptionClient(wsURL, {
    connectionParams: { authorization: `Bearer ${token}` }, reconnect: false,
  }, recordingSocket(name('legacy')));
  ends.push(new Promise((resolve) => legacy.request({ query, variables: { p: project } }).subscribe(sink(name('legacy'), resolve))));

  const sse = createSseClient({ url: endpoint, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  ends.push(new Promise((resolve) => sse.subscribe({ query, variables: { p: project } }, sink(name('sse'), resolve))));

  // An idle connection, acknowledged but running nothing.
  createWsClient({
    url: wsURL, webSocketImpl: recordingSocket(name('idle')), retryAttempts: 0, lazy: false,
    onNonLazyError: () => {}, // its close is reported by the socket
    connectionParams: { authorization: `Bearer ${token}` },
    on: { connected: () => say(`ready ${name('idle')}`) },
  });
}
await Promise.all(ends);
// Give the sockets' close events a moment to be reported.
setTimeout(() => process.exit(0), 1000);
