// Opens GraphiQL as rdev serves it at RDEV_URL, with no network beyond
// loopback, puts the key RDEV_TOKEN in the Headers pane and runs a query, a
// mutation (echo) and a subscription to the command's output, recording
// every text the response pane shows; opens the explorer plugin on the way. Prints a REPORT line for the Go test.
import { finish, launch, watch } from "./browser.mjs";

const base = process.env.RDEV_URL;
const token = process.env.RDEV_TOKEN;
const project = process.env.RDEV_PROJECT ?? "demo";
const marker = process.env.RDEV_MARKER ?? "hello from graphiql";
const timeout = 30_000;

const browser = await launch();
const { page, report } = await watch(browser, [base]);
try {
  const res = await page.goto(base + "/", { waitUntil: "load" });
  report.csp_header = res.headers()["content-security-policy"] ?? "";
  await page.waitForSelector(".graphiql-query-editor .CodeMirror", { timeout });

  // CodeMirror 5 keeps its editor on the wrapper element; GraphiQL listens
  // to its changes as it does to typing.
  const editors = () =>
    page.evaluate(() => [...document.querySelectorAll(".CodeMirror")].map((el) => el.CodeMirror.getValue()));
  report.hint = (await editors()).find((v) => v.includes("Authorization")) ?? "";
  await page.evaluate((token) => {
    const headers = [...document.querySelectorAll(".graphiql-editor-tool .CodeMirror")].find((el) =>
      el.CodeMirror.getValue().includes("Authorization"),
    );
    headers.CodeMirror.setValue(JSON.stringify({ Authorization: `Bearer ${token}` }));
  }, token);

  // The explorer plugin lists the schema's fields (introspection needs no
  // key in embedded mode).
  await page.evaluate(() => document.querySelector('.graphiql-sidebar button[aria-label="Show GraphiQL Explorer"]').click());
  await page.waitForFunction(() => document.querySelector(".graphiql-explorer-root")?.innerText.includes("executeCommand"), { timeout });
  report.explorer = true;

  // Every value the response pane takes, in order.
  await page.waitForSelector(".graphiql-response .CodeMirror", { timeout });
  await page.evaluate(() => {
    window.__responses = [];
    const cm = document.querySelector(".graphiql-response .CodeMirror").CodeMirror;
    cm.on("change", () => window.__responses.push(cm.getValue()));
  });
  const run = async (query, done) => {
    await page.evaluate(() => (window.__responses.length = 0));
    await page.evaluate((q) => document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.setValue(q), query);
    // GraphiQL parses the document a moment after an edit (onto the
    // editor's operations) and picks the transport by the parsed operation's
    // kind: run only once it has read this one.
    const kind = query.trimStart().split(/[\s{]/)[0];
    await page.waitForFunction(
      (kind) => {
        const ops = document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.operations;
        return ops?.length === 1 && ops[0].operation === kind && !document.querySelector(".graphiql-execute-button[aria-haspopup]");
      },
      { timeout },
      kind,
    );
    await page.evaluate(() => document.querySelector(".graphiql-execute-button").click());
    await page.waitForFunction(done, { timeout, polling: 50 });
    return page.evaluate(() => window.__responses.slice());
  };

  report.query = await run(`query { projects { nodes { id status } } }`, () =>
    window.__responses.some((r) => r.includes('"projects"') || r.includes('"errors"')),
  );
  report.mutation = await run(
    `mutation { executeCommand(input: { projectId: ${JSON.stringify(project)}, argv: ["echo", ${JSON.stringify(marker)}] }) { command { id status } } }`,
    () => window.__responses.some((r) => r.includes('"executeCommand"') || r.includes('"errors"')),
  );
  const id = JSON.parse(report.mutation.at(-1)).data?.executeCommand?.command?.id;
  if (!id) throw new Error("the mutation returned no command id");
  report.subscription = await run(
    `subscription { commandOutput(commandId: ${JSON.stringify(id)}) { __typename ... on OutputChunk { seq data } ... on CommandFinished { status exitCode } } }`,
    () => window.__responses.some((r) => r.includes("CommandFinished") || r.includes('"errors"')),
  );
  await finish(browser, report);
} catch (err) {
  await finish(browser, report, err);
}
