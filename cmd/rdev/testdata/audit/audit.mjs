// Runs graphql-http's audit of the GraphQL over HTTP specification against
// the rdev server at RDEV_URL, authenticated with RDEV_TOKEN. Prints one line
// per audit ("ok ID name", or its status, the reason and the response), then
// "N audits, N ok"; exits 1 unless every audit is ok.
import { serverAudits } from 'graphql-http';

const url = process.env.RDEV_URL + '/graphql';
const token = process.env.RDEV_TOKEN;
if (!process.env.RDEV_URL || !token) {
  console.error('audit: set RDEV_URL and RDEV_TOKEN');
  process.exit(2);
}

// Every audit request carries the key, as a real client's would.
function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', 'Bearer ' + token);
  return fetch(input, { ...init, headers });
}

async function describe(res) {
  if (!res) return '';
  let body = '';
  try {
    body = await res.clone().text();
  } catch {
    body = '(body already read)';
  }
  return ` [${res.status} ${res.headers.get('content-type')}] ${body.slice(0, 300)}`;
}

let ok = 0;
const audits = serverAudits({ url, fetchFn });
for (const a of audits) {
  const r = await a.fn();
  if (r.status === 'ok') {
    ok++;
    console.log(`ok ${r.id} ${r.name}`);
  } else {
    console.log(`${r.status} ${r.id} ${r.name}: ${r.reason}${await describe(r.response)}`);
  }
}
console.log(`${audits.length} audits, ${ok} ok`);
process.exit(ok === audits.length ? 0 : 1);
