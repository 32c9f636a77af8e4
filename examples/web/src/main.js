// A web page on rdev's API from another origin: a query (projects), a
// mutation (executeCommand) over HTTP with urql, and a subscription
// (commandOutput) over WebSocket with graphql-ws, printed as it arrives.
// The server must list this page's origin in RDEV_ALLOWED_ORIGINS.
import { Client, fetchExchange, gql, subscriptionExchange } from "@urql/core";
import { createClient as createWSClient } from "graphql-ws";

const ProjectsQuery = gql`
  query Projects {
    projects(first: 100) {
      nodes { id status }
    }
  }
`;

const ExecuteMutation = gql`
  mutation Execute($input: ExecuteCommandInput!) {
    executeCommand(input: $input) {
      command { id status }
    }
  }
`;

const OutputSubscription = gql`
  subscription Output($commandId: ID!, $afterSeq: Int) {
    commandOutput(commandId: $commandId, afterSeq: $afterSeq) {
      __typename
      ... on OutputChunk { seq stream data }
      ... on OutputGap { nextSeq }
      ... on CommandFinished { status exitCode lastSeq }
    }
  }
`;

const $ = (id) => document.getElementById(id);

// connect makes the two clients for one API URL and key: urql for queries
// and mutations over HTTP, and graphql-ws (graphql-transport-ws) for
// subscriptions, which sends the key in connection_init.
function connect(api, key) {
  const ws = createWSClient({
    url: api.replace(/^http/, "ws") + "/graphql",
    connectionParams: { authorization: `Bearer ${key}` },
    lazy: true,
  });
  const client = new Client({
    url: api + "/graphql",
    fetchOptions: { headers: { authorization: `Bearer ${key}` } },
    exchanges: [
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "" };
          return {
            subscribe(sink) {
              return { unsubscribe: ws.subscribe(input, sink) };
            },
          };
        },
      }),
    ],
  });
  return { client, ws };
}

let current;

function showError(err) {
  // A WebSocket that closed arrives as its CloseEvent.
  const closed = err?.networkError?.code;
  $("error").textContent = !err ? "" : closed ? `WebSocket closed: ${closed} ${err.networkError.reason}` : String(err.message ?? err);
}

async function listProjects(event) {
  event.preventDefault();
  showError();
  current?.ws.dispose();
  current = connect($("api").value.replace(/\/+$/, ""), $("key").value.trim());
  const { data, error } = await current.client.query(ProjectsQuery, {}).toPromise();
  if (error) return showError(error);
  const nodes = data.projects.nodes;
  $("projects").replaceChildren(
    ...nodes.map((p) => Object.assign(document.createElement("li"), { textContent: `${p.id} (${p.status})` })),
  );
  $("project").replaceChildren(...nodes.map((p) => new Option(p.id, p.id)));
  $("run").hidden = nodes.length === 0;
}

async function run(event) {
  event.preventDefault();
  showError();
  const input = { projectId: $("project").value, shell: $("shell").value };
  const { data, error } = await current.client.mutation(ExecuteMutation, { input }).toPromise();
  if (error) return showError(error);
  const id = data.executeCommand.command.id;
  $("status").textContent = `command ${id}: ${data.executeCommand.command.status}`;
  $("output").replaceChildren();
  tail(id);
}

// tail prints a command's output as it arrives, then how it ended; after a
// dropped connection it resumes after the last chunk it printed, a few times.
function tail(id, afterSeq = 0, retries = 5) {
  let last = afterSeq;
  const { unsubscribe } = current.client.subscription(OutputSubscription, { commandId: id, afterSeq }).subscribe((result) => {
    if (result.error) {
      showError(result.error);
      unsubscribe();
      if (result.error.networkError && retries > 0) setTimeout(() => tail(id, last, retries - 1), 1000);
      return;
    }
    const event = result.data.commandOutput;
    switch (event.__typename) {
      case "OutputChunk": {
        last = event.seq;
        const span = Object.assign(document.createElement("span"), { textContent: event.data });
        if (event.stream === "STDERR") span.className = "stderr";
        $("output").append(span);
        break;
      }
      case "OutputGap":
        last = event.nextSeq - 1;
        $("output").append(`[… output up to ${event.nextSeq} was dropped …]\n`);
        break;
      case "CommandFinished":
        $("status").textContent = `command ${id}: ${event.status}` + (event.exitCode == null ? "" : ` (exit ${event.exitCode})`);
        break;
    }
  });
}

$("api").value = new URLSearchParams(location.search).get("api") ?? "http://localhost:8080";
$("connect").addEventListener("submit", listProjects);
$("run").addEventListener("submit", run);
