// Opens the built examples/web page at RDEV_WEB_URL (another origin than
// the API at RDEV_URL, which the page is told with ?api=), enters the key
// RDEV_TOKEN, lists the projects (a query), runs `echo RDEV_MARKER` in
// RDEV_PROJECT (a mutation) and waits for the page to print its output (a
// subscription over graphql-ws) and its end. Prints a REPORT line for the
// Go test.
import { finish, launch, watch } from "./browser.mjs";

const api = process.env.RDEV_URL;
const web = process.env.RDEV_WEB_URL;
const project = process.env.RDEV_PROJECT ?? "demo";
const marker = process.env.RDEV_MARKER ?? "hello from the web";
const timeout = 30_000;

const browser = await launch();
const { page, report } = await watch(browser, [api, web]);
const text = (id) => page.$eval(`#${id}`, (el) => el.textContent);
try {
  await page.goto(`${web}/?api=${encodeURIComponent(api)}`, { waitUntil: "load" });
  report.origin = await page.evaluate(() => location.origin);
  await page.type("#key", process.env.RDEV_TOKEN);
  await page.click("#list");
  await page.waitForFunction(
    (project) => document.getElementById("error").textContent || [...document.querySelectorAll("#projects li")].some((li) => li.textContent.startsWith(project + " ")),
    { timeout },
    project,
  );
  report.error_text = await text("error");
  report.projects = await page.$$eval("#projects li", (lis) => lis.map((li) => li.textContent));
  if (report.error_text) throw new Error("listing projects: " + report.error_text);

  await page.select("#project", project);
  await page.$eval("#shell", (el, cmd) => (el.value = cmd), `echo ${JSON.stringify(marker)}`);
  await page.click("#execute");
  await page.waitForFunction(
    () => document.getElementById("error").textContent || / (SUCCEEDED|FAILED|CANCELLED|TIMED_OUT|INTERRUPTED)/.test(document.getElementById("status").textContent),
    { timeout },
  );
  report.error_text = await text("error");
  report.status = await text("status");
  report.output = await text("output");
  await finish(browser, report);
} catch (err) {
  report.error_text ??= await text("error").catch(() => "");
  report.status ??= await text("status").catch(() => "");
  report.output ??= await text("output").catch(() => "");
  await finish(browser, report, err);
}
