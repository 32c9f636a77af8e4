// Follows one command's output with graphql-ws and prints a summary line:
// "ok follow status=… chunks=… bytes=…". Usage: RDEV_URL=… RDEV_TOKEN=…
// RDEV_COMMAND=<id> node follow.mjs
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const client = createClient({
  url: `${process.env.RDEV_URL}/graphql`.replace(/^http/, 'ws'),
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${process.env.RDEV_TOKEN}` },
  retryAttempts: 0,
});
let seq = 0;
let bytes = 0;
let chunks = 0;
let status = '';
await new Promise((resolve, reject) => {
  client.subscribe({
    query: `subscription($id: ID!) { commandOutput(commandId: $id) {
      __typename ... on OutputChunk { seq data } ... on CommandFinished { status lastSeq } } }`,
    variables: { id: process.env.RDEV_COMMAND },
  }, {
    next: ({ data, errors }) => {
      if (errors) return reject(new Error(JSON.stringify(errors)));
      const e = data.commandOutput;
      if (e.__typename === 'OutputChunk') {
        if (e.seq !== seq + 1) reject(new Error(`seq ${e.seq} after ${seq}`));
        seq = e.seq;
        chunks++;
        bytes += Buffer.byteLength(e.data);
      } else {
        status = e.status;
        if (e.lastSeq !== seq) reject(new Error(`lastSeq ${e.lastSeq}, received ${seq}`));
      }
    },
    error: reject,
    complete: resolve,
  });
});
await client.dispose();
console.log(`ok follow status=${status} chunks=${chunks} bytes=${bytes}`);
process.exit(status === 'SUCCEEDED' ? 0 : 1);
