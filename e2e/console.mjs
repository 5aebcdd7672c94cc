// Drives the Airlock console in headless Chromium: sign in with a human token and TOTP code,
// watch an agent's request appear in the live queue, approve it, and check the agent's retry
// goes through. Started by crates/airlock-cli/tests/console.rs, which sets the environment.
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (!v) { console.error(`missing ${k}`); process.exit(2); }
  return v;
};
const ADMIN = env('ADMIN_URL'), PROXY = env('PROXY_URL');
const HUMAN = env('HUMAN_TOKEN'), CODE = env('TOTP_CODE'), AGENT = env('AGENT_TOKEN');
const SHOT = env('SCREENSHOT');
const del = JSON.stringify({ query: 'mutation { volumeDelete(volumeId: "vol-prod-bookings") }' });
const agentDelete = () => fetch(`${PROXY}/cloud/graphql`, {
  method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${AGENT}` }, body: del,
});
const fail = (m) => { console.error(m); process.exit(1); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.goto(`${ADMIN}/console`);
  await page.fill('#token', HUMAN);
  await page.fill('#totp', CODE);
  await page.click('#login');
  await page.waitForSelector('#who', { timeout: 10000 });
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'airlock_session');
  if (!session || !session.httpOnly || session.sameSite !== 'Strict') fail(`bad session cookie: ${JSON.stringify(session)}`);

  // The agent asks after the page is open: the row must appear without a reload.
  const first = await agentDelete();
  const body = await first.json();
  if (first.status !== 403 || body.error !== 'approval_required') fail(`expected approval_required, got ${first.status} ${JSON.stringify(body)}`);
  const apr = body.approval;
  await page.waitForSelector(`tr[id="${apr}"]`, { timeout: 10000 });
  await page.screenshot({ path: SHOT, fullPage: true });

  const form = page.locator(`tr[id="${apr}"] form[action$="/approve"]`);
  await form.locator('input[name="reason"]').fill('approved in the browser test');
  await form.locator('button').click();
  await page.waitForSelector('#result', { timeout: 10000 });
  const result = await page.textContent('#result');
  if (!result.includes('approved')) fail(`approval not recorded: ${result}`);

  const retry = await agentDelete();
  if (retry.status !== 200) fail(`the agent's retry was refused: ${retry.status} ${await retry.text()}`);

  await page.goto(`${ADMIN}/console/audit?actor_kind=human&decision=allow`);
  await page.waitForSelector('#audit');
  const audit = await page.textContent('#audit');
  if (!audit.includes('approval.approve')) fail('the approval is missing from the filtered audit view');
  console.log(`ok ${apr}`);
} finally {
  await browser.close();
}
