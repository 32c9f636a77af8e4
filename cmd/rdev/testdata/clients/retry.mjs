// Apollo Client's RetryLink set up as docs/api.md ("Outages and retrying")
// says, against a running rdev whose key has a budget of one request a
// second: every query must succeed in the end, the refused ones retried.
// Under application/graphql-response+json, which Apollo Client accepts
// first, a 429 or 503 arrives as a result with errors and no data, which
// RetryLink alone would not retry.
// Usage: RDEV_URL=… RDEV_TOKEN=… node retry.mjs
// Prints "ok <check>" per passed check; exits 1 on the first failure.
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { RetryLink } from '@apollo/client/link/retry';
import { map } from 'rxjs';

function check(name, cond, detail) {
  if (!cond) {
    console.error(`FAIL ${name}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok ${name}`);
}

// From docs/api.md, as written there.
const retryableCode = (code) => code === 'UNAVAILABLE' || code === 'RATE_LIMITED';

const retryable = (error, operation) => {
  const status = error?.statusCode ?? error?.networkError?.statusCode;
  const code = (error?.graphQLErrors ?? error?.errors)?.[0]?.extensions?.code;
  if (code) return retryableCode(code);
  if (status) return [429, 502, 503, 504].includes(status);
  // No answer at all: retry queries and subscriptions; a mutation only if
  // it is idempotent, as executeCommand with a clientToken is.
  return operation.query.definitions.every((d) => d.operation !== 'mutation') ||
    operation.variables?.in?.clientToken != null;
};

// A request refused before it ran (no data) with a code to retry becomes an
// error, which RetryLink retries.
const refusalsAsErrors = new ApolloLink((operation, forward) =>
  forward(operation).pipe(map((result) => {
    if (result.data == null && retryableCode(result.errors?.[0]?.extensions?.code)) {
      throw new CombinedGraphQLErrors(result);
    }
    return result;
  })));
// End of the docs' code.

let sent = 0;
const counting = new ApolloLink((operation, forward) => {
  sent++;
  return forward(operation);
});
const httpLink = new HttpLink({
  uri: `${process.env.RDEV_URL}/graphql`,
  headers: { authorization: `Bearer ${process.env.RDEV_TOKEN}` },
});
const link = new RetryLink({
  delay: { initial: 500, max: 30_000, jitter: true },
  attempts: { max: Infinity, retryIf: retryable },
}).concat(refusalsAsErrors, counting, httpLink);
const client = new ApolloClient({ link, cache: new InMemoryCache() });

const queries = 3;
for (let i = 0; i < queries; i++) {
  const r = await client.query({ query: gql`query Viewer { viewer { id } }`, fetchPolicy: 'no-cache' });
  check(`query ${i + 1} answered`, r.data?.viewer?.id && !r.error, r);
}
check('refused queries were retried', sent > queries, `${sent} requests for ${queries} queries`);
