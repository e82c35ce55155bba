// The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core).
// Usage: node tests/browser/ui.mjs URL SCREENSHOT.png
// Expects a catalog where the sample run waits for `invoices` to be approved. Loads the
// catalog table, the run page and the execution graph, approves `invoices` through the
// confirmation dialog, waits for the live update that shows it completed, opens its
// dataset page and from there its execution, and saves screenshots (SCREENSHOT and
// SCREENSHOT with -catalog / -run / -dataset before .png).
// The last stdout line is a JSON summary the Rust test (tests/ui.rs) checks.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, shot] = process.argv.slice(2);
if (!url || !shot) {
  console.error("usage: node tests/browser/ui.mjs URL SCREENSHOT.png");
  process.exit(2);
}
const profile = mkdtempSync(join(tmpdir(), "skein-ui-chromium-"));
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium", headless: true, args, viewport: { width: 1400, height: 1000 },
});
const out = { consoleErrors: [] };
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20000);
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => out.consoleErrors.push(String(e)));

  // The catalog table.
  await page.goto(url);
  const invoices = page.locator('#datasets tbody tr[data-dataset="invoices"]');
  await invoices.waitFor();
  await page.locator("#live.on").waitFor(); // the server-sent event stream is open
  out.tableRows = await page.locator("#datasets tbody tr[data-dataset]").count();
  out.statusBefore = await invoices.locator("td.status").getAttribute("data-status");
  // Every sample is at v1: no "Roll back" anywhere (there is nothing to go back to).
  out.rollbackButtons = await page.locator('#datasets button[data-action="rollback"]').count();
  // The filters narrow the table.
  await page.selectOption("#f-status", "awaiting_approval");
  out.filteredRows = await page.locator("#datasets tbody tr[data-dataset]").count();
  await page.selectOption("#f-status", "");
  await page.screenshot({ path: shot.replace(/\.png$/, "-catalog.png"), fullPage: true });

  // The run page: overall, per wave, per group.
  await page.click('header a[data-nav="runs"]');
  await page.locator("#runs tbody a").first().click();
  await page.locator("#overall").waitFor();
  out.runOverall = await page.locator("#overall").textContent();
  out.waveRows = await page.locator("#waves tbody tr").count();
  out.groupRows = await page.locator("#groups tbody tr").count();
  out.throughputChart = await page.locator("#throughput polyline").count();
  await page.screenshot({ path: shot.replace(/\.png$/, "-run.png"), fullPage: true });

  // The execution graph of the waiting dataset.
  await page.locator('#run-datasets tr[data-dataset="invoices"] a').click();
  await page.locator("#graph svg g.node").first().waitFor();
  out.graphNodes = await page.locator("#graph svg g.node").count();
  out.graphEdges = await page.locator("#graph svg polyline.edge").count();
  out.waitingState = await page.locator('#graph g.node[data-state="WaitForApproval"]').getAttribute("data-status");
  out.events = await page.locator("#events tbody tr").count();

  // Approve it from the catalog, through the confirmation dialog.
  await page.click('header a[data-nav="catalog"]');
  await invoices.locator('button[data-action="approve"]').click();
  await page.locator("#confirm[open]").waitFor();
  out.dialog = await page.locator("#confirm-text").textContent();
  await page.click("#confirm-ok");
  // The run (another process) publishes; the live update redraws the row.
  await page.locator('#datasets tr[data-dataset="invoices"] td.status[data-status="completed"]').waitFor({ timeout: 60000 });
  out.statusAfter = await invoices.locator("td.status").getAttribute("data-status");

  // The dataset's page (its name in the table links there): facts, versions, attempts,
  // its dependencies as a small graph, its executions.
  await invoices.locator("a").click();
  await page.locator('#versions tbody tr[data-version="1"]').waitFor();
  out.datasetVersions = await page.locator("#versions tbody tr[data-version]").count();
  out.datasetFacts = (await page.locator("#dataset-facts").innerText()).replace(/\s+/g, " ");
  out.datasetAttempts = await page.locator("#attempts tbody tr").count();
  out.datasetUpstream = await page.locator("#deps g.dep.upstream").getAttribute("data-dataset");
  out.datasetExecutions = await page.locator("#dataset-executions a").count();
  await page.screenshot({ path: shot.replace(/\.png$/, "-dataset.png"), fullPage: true });
  // Its execution: the graph now shows the approval and the publish done.
  await page.locator("#dataset-executions a").first().click();
  await page.locator('#graph g.node[data-state="Publish"][data-status="succeeded"]').waitFor({ timeout: 30000 });
  out.waitingStateAfter = await page.locator('#graph g.node[data-state="WaitForApproval"]').getAttribute("data-status");
  out.publishState = await page.locator('#graph g.node[data-state="Publish"]').getAttribute("data-status");
  // Clicking a state shows its input and output from the history, as the console does.
  await page.locator('#graph g.node[data-state="Publish"]').click();
  await page.locator("#state-detail pre.output").waitFor();
  out.publishInput = await page.locator("#state-detail pre.input").textContent();
  out.publishOutput = await page.locator("#state-detail pre.output").textContent();
  await page.screenshot({ path: shot, fullPage: true });
  out.screenshot = shot;
  // The run's execution: its Wave Map links to the dataset executions it started.
  const runId = await page.locator('main p.muted a[href^="#/runs/"]').first().textContent();
  await page.goto(`${url.replace(/#.*$/, "").replace(/\/$/, "")}/#/executions/${encodeURIComponent(runId)}`);
  await page.locator('#graph g.node[data-state="Wave"]').waitFor();
  // A container's middle is its inner states: click its label, top left.
  await page.locator('#graph g.node[data-state="Wave"]').click({ position: { x: 24, y: 12 } });
  await page.locator("#child-executions a.child").first().waitFor();
  out.waveChildren = await page.locator("#child-executions a.child").count();
  await page.locator("#child-executions a.child").first().click();
  await page.locator('#graph g.node[data-state="Publish"]').waitFor();
  out.childOpened = await page.locator("h1").textContent();
} catch (e) {
  out.error = String(e && e.stack || e);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
process.exit(out.error ? 1 : 0);
