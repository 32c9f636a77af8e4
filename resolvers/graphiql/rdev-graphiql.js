// Starts GraphiQL against this server's /graphql: queries and mutations over
// HTTP, subscriptions over WebSocket (graphql-transport-ws, the graphql-ws
// client bundled in graphiql.min.js) on the same host, wss: when the page
// came over https:. The headers pane is sent with every operation, over
// HTTP as headers and over WebSocket as the connection_init payload, which
// rdev reads the same way.
(function () {
  "use strict";
  var url = new URL("/graphql", window.location.href);
  var subscriptionUrl = new URL(url.href);
  subscriptionUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";

  var defaultQuery = [
    "# rdev: put your API key in the Headers pane below (rdev keys create",
    "# prints one), then run an operation with the ▶ button or Ctrl-Enter.",
    "",
    "query Projects {",
    "  projects(first: 20) {",
    "    nodes { id status }",
    "  }",
    "}",
    "",
    "mutation Run {",
    "  executeCommand(input: { projectId: \"demo\", argv: [\"echo\", \"hello\"] }) {",
    "    command { id status }",
    "  }",
    "}",
    "",
    "# Paste the id that Run returned.",
    "subscription Output {",
    "  commandOutput(commandId: \"CMD_ID\") {",
    "    __typename",
    "    ... on OutputChunk { seq stream data }",
    "    ... on CommandFinished { status exitCode }",
    "  }",
    "}",
    "",
  ].join("\n");

  var h = React.createElement;
  var fetcher = GraphiQL.createFetcher({ url: url.href, subscriptionUrl: subscriptionUrl.href });
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    h(
      GraphiQL,
      {
        fetcher: fetcher,
        defaultQuery: defaultQuery,
        defaultHeaders: '{"Authorization": "Bearer rdev_…"}',
        defaultEditorToolsVisibility: "headers",
        isHeadersEditorEnabled: true,
        // The key stays in this tab only: not kept in localStorage.
        shouldPersistHeaders: false,
        plugins: [GraphiQLPluginExplorer.explorerPlugin()],
      },
      h(
        GraphiQL.Footer,
        null,
        h("a", { className: "rdev-licences", href: "/graphiql/LICENSES.txt", target: "_blank", rel: "noopener" },
          "GraphiQL and its libraries: licences"),
      ),
    ),
  );
})();
