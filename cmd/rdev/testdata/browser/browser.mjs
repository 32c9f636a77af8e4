// Shared by the browser scripts: Debian's chromium through puppeteer-core,
// with every host but loopback unresolvable (as on a machine with no
// network), and a record of what a page did that a test wants to see:
// requests to other origins, WebSockets opened, Content-Security-Policy
// violations and console errors.
import puppeteer from "puppeteer-core";

export async function launch() {
  const executablePath = process.env.CHROMIUM;
  if (!executablePath) throw new Error("set CHROMIUM to the chromium binary");
  return puppeteer.launch({
    executablePath,
    headless: true,
    args: [
      "--no-sandbox", // CI runs as root
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--no-first-run",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    ],
  });
}

// watch opens a page that records its traffic into the returned report;
// allowed lists the origins it may reach (http: and ws: alike).
export async function watch(browser, allowed) {
  const page = await browser.newPage();
  const report = { foreign: [], sockets: [], csp: [], console: [], requests: 0 };
  const origins = new Set(allowed.map((u) => new URL(u).host));
  page.on("request", (req) => {
    report.requests++;
    const u = new URL(req.url());
    if (u.protocol !== "data:" && !origins.has(u.host)) report.foreign.push(req.url());
  });
  page.on("console", (msg) => {
    if (msg.type() === "error") report.console.push(msg.text());
  });
  page.on("pageerror", (err) => report.console.push(String(err)));
  const cdp = await page.createCDPSession();
  await cdp.send("Network.enable");
  const socketURLs = new Map();
  cdp.on("Network.webSocketCreated", (e) => {
    socketURLs.set(e.requestId, e.url);
    if (!origins.has(new URL(e.url).host)) report.foreign.push(e.url);
  });
  cdp.on("Network.webSocketWillSendHandshakeRequest", (e) => {
    const h = e.request.headers;
    report.sockets.push({ url: socketURLs.get(e.requestId) ?? "", protocol: h["Sec-WebSocket-Protocol"] ?? h["sec-websocket-protocol"] ?? "" });
  });
  await page.evaluateOnNewDocument(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  report.collect = async () => {
    report.csp = await page.evaluate(() => window.__csp ?? []).catch((e) => [`(unreadable: ${e})`]);
  };
  return { page, report };
}

// finish prints the report as one JSON line for the Go test and exits.
export async function finish(browser, report, error) {
  if (report.collect) await report.collect();
  delete report.collect;
  if (error) report.error = String(error.stack ?? error);
  console.log("REPORT " + JSON.stringify(report));
  await browser.close();
  process.exit(error ? 1 : 0);
}
