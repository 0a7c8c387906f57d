// Drives Debian's Chromium through dsr-connector's status page, for tests/e2e/fulfilment_test.cpp
// (Fulfilment.StatusPageInChromium...). Run by that test during a demo run:
//
//   node status_page.mjs <base-url> <admin-token> <failed-request-id> <screenshot.png>
//
// It signs in through the form, checks every figure the page marks (data-figure / data-value)
// against /metrics fetched right after, checks the failed job is listed as overdue, saves a
// screenshot, clicks the job's Retry button and checks the page says it was queued again.
// Prints one JSON line with what it checked; exits 1 naming each mismatch.
import { chromium } from 'playwright-core';

const [base, token, failedId, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: node status_page.mjs <base-url> <admin-token> <failed-request-id> <png>');
  process.exit(2);
}
const problems = [];
const fail = (message) => problems.push(message);

// The text exposition format, as far as this check needs: name{labels} value.
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2];
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

// What a figure of the page must equal in /metrics, from its name alone.
function expected(samples, figure) {
  const [what, arg] = figure.split(':');
  const sum = (name, keep) =>
    samples.filter((s) => s.name === name && keep(s.labels)).reduce((a, s) => a + s.value, 0);
  const one = (name, keep = () => true) => {
    const found = samples.filter((s) => s.name === name && keep(s.labels));
    return found.length === 1 ? found[0].value : undefined;
  };
  switch (what) {
    case 'jobs': return one('dsr_jobs', (l) => l.state === arg);
    case 'overdue': return one('dsr_jobs_overdue');
    case 'due_soon': return one('dsr_jobs_due_soon');
    case 'paused': return one('dsr_dispatch_paused');
    case 'exponea_calls': return sum('dsr_exponea_requests_total', (l) => l.endpoint === arg);
    // No answer, or 4xx/5xx but 404 (Exponea's "no such customer", how a delete is verified).
    case 'exponea_errors':
      return sum('dsr_exponea_requests_total',
        (l) => l.endpoint === arg && (l.code === '0' || (Number(l.code) >= 400 && l.code !== '404')));
    case 'exponea_mean_seconds': {
      const total = one('dsr_exponea_request_duration_seconds_sum', (l) => l.endpoint === arg);
      const count = one('dsr_exponea_request_duration_seconds_count', (l) => l.endpoint === arg);
      return count ? total / count : undefined;
    }
    case 'retries': return one('dsr_retries_total', (l) => l.reason === arg);
    case 'reports': return one('dsr_reports_total', (l) => l.result === arg);
    case 'rate_limit_wait_seconds': return one('dsr_rate_limit_wait_seconds_total');
    default: return undefined;
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  // Root in a sandbox-less container, and a closed network: nothing in the background.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const checked = { figures: 0 };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });

  // Signed out: the sign-in form, and nothing of the daemon's state.
  const first = await page.goto(base + '/');
  if (first.status() !== 401) fail(`GET / without a session answered ${first.status()}, not 401`);
  if (await page.locator('[data-figure]').count() !== 0) fail('figures shown before signing in');
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForURL(base + '/'), page.click('button[type=submit]')]);
  if (await page.locator('[data-figure]').count() === 0) fail('no figure after signing in');

  const figures = await page.$$eval('[data-figure]', (els) =>
    els.map((e) => ({ figure: e.dataset.figure, value: Number(e.dataset.value), text: e.textContent })));
  const metrics = parseMetrics(await (await fetch(base + '/metrics')).text());
  const seen = new Set();
  for (const f of figures) {
    seen.add(f.figure);
    const want = expected(metrics, f.figure);
    if (want === undefined) {
      fail(`figure ${f.figure} has no counterpart in /metrics`);
    } else if (Math.abs(want - f.value) > 1e-9 * Math.max(1, Math.abs(want))) {
      fail(`figure ${f.figure}: the page shows ${f.value}, /metrics says ${want}`);
    } else if (Number.isInteger(want) && !f.figure.startsWith('paused') &&
               !f.figure.includes('seconds') && f.text.trim() !== String(want)) {
      fail(`figure ${f.figure}: the page reads "${f.text}", /metrics says ${want}`);
    }
    checked.figures += 1;
  }
  for (const must of ['jobs:queued', 'jobs:running', 'jobs:retrying', 'jobs:completed',
    'jobs:user_not_found', 'jobs:failed', 'jobs:cancelled', 'overdue', 'due_soon', 'paused',
    'exponea_calls:anonymize', 'exponea_errors:anonymize', 'exponea_mean_seconds:anonymize']) {
    if (!seen.has(must)) fail(`the page shows no ${must}`);
  }

  // The failed job: listed as overdue, and with a Retry button.
  const lateRow = page.locator('section', { hasText: 'Deadlines' }).locator('tr', { hasText: failedId });
  if (await lateRow.count() !== 1) fail(`${failedId} is not listed once under Deadlines`);
  else if (!(await lateRow.innerText()).includes('overdue by')) fail(`${failedId} is not shown overdue`);
  const retry = page.locator(`button[data-retry="${failedId}"]`);
  if (await retry.count() !== 1) fail(`no Retry button for ${failedId}`);
  checked.failedListed = await retry.count() === 1;

  await page.screenshot({ path: screenshot, fullPage: true });
  checked.screenshot = screenshot;

  if (checked.failedListed) {
    await Promise.all([page.waitForURL(/\?retried=/), retry.click()]);
    const notice = await page.locator('.notice').innerText().catch(() => '');
    if (!notice.includes(`Retry of ${failedId}: queued again.`)) {
      fail(`after Retry the page says "${notice}"`);
    }
    checked.retried = failedId;
  }
} catch (e) {
  fail(`browser: ${e.message}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ...checked, problems }));
process.exit(problems.length === 0 ? 0 : 1);
