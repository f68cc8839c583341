/**
 * A sync killed while it gives a mailbox the other side's GUID (two INBOXes made apart become
 * one): the next run must join them and copy the mail, not leave two INBOXes that every run
 * tries to create on the other side (exit 2 forever, the mail of neither copied).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import type { MailboxStatus } from '../../src/storage/store.js';
import { planTreeTwoWay } from '../../src/sync/tree-twoway.js';
import { corpusMessages } from '../support/corpus.js';
import { req } from '../contract/store-contract.js';
import { INBOX, openMaildir, tempRoots, withStores } from './maildir-pair.js';

const CLI = join(import.meta.dirname, '../../dist/cli/main.js');
const mail = corpusMessages(30);

function sync(a: string, b: string, env: Record<string, string> = {}): { code: number | null; signal: string | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, '-o', 'mail_fsync=never', 'sync', `maildir:${a}`, `maildir:${b}`], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, signal: r.signal, stderr: r.stderr };
}

/** Two Maildirs whose INBOXes were made apart: A's holds 20 messages, B's none; B has Other with 5. */
async function apart(a: string, b: string): Promise<void> {
  await withStores(a, b, async (sa, sb) => {
    await sa.saveMessages(INBOX, mail.slice(0, 20).map((m) => req(m)));
    await sb.createMailbox(['Other']);
    await sb.saveMessages(['Other'], mail.slice(20, 25).map((m) => req(m)));
  });
}

async function holdings(root: string): Promise<Record<string, string[]>> {
  const s = openMaildir(root);
  try {
    const out: Record<string, string[]> = {};
    for (const m of (await s.listMailboxes()).mailboxes) out[`${m.name.join('/')} ${m.guid}`] = (await s.getMessages(m.name)).messages.map((x) => x.guid).sort();
    return out;
  } finally {
    await s.close();
  }
}

async function converges(a: string, b: string): Promise<void> {
  const codes: (number | null)[] = [];
  for (let i = 0; i < 3; i++) {
    const r = sync(a, b);
    codes.push(r.code);
    assert.ok(r.code === 0 || r.code === 2, r.stderr);
    assert.doesNotMatch(r.stderr, /already exists/);
    if (r.code === 0) break;
  }
  assert.equal(codes.at(-1), 0, `runs exited ${codes.join(', ')}`);
  const ha = await holdings(a);
  assert.deepEqual(await holdings(b), ha);
  assert.equal(Object.values(ha).flat().length, 25, 'every message, once');
  assert.equal(sync(a, b).code, 0);
}

it('killed between the uidlist and the index taking the new GUID: the next run joins the INBOXes', async () => {
  const { dir, a, b } = await tempRoots('set-guid-kill');
  try {
    await apart(a, b);
    const r = sync(a, b, { MAILFERRY_FAILPOINT: 'set-guid-after-uidlist' });
    assert.equal(r.signal, 'SIGKILL', `the run reached the failpoint: ${r.stderr}`);
    await converges(a, b);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('an INBOX whose index took the GUID while its uidlist kept the old one (as earlier versions could leave it) is joined', async () => {
  const { dir, a, b } = await tempRoots('set-guid-old-order');
  try {
    await apart(a, b);
    // What the old order left after a kill: the index holds A's GUID for B's INBOX, the uidlist
    // B's own, so the next scan logs A's GUID as deleted on B.
    const [guidA, guidB] = await withStores(a, b, async (sa, sb) => {
      const ga = (await sa.listMailboxes()).mailboxes.find((m) => m.name[0] === 'INBOX')!.guid;
      const gb = (await sb.listMailboxes()).mailboxes.find((m) => m.name[0] === 'INBOX')!.guid;
      await sb.updateMailbox(INBOX, { guid: ga });
      return [ga, gb];
    });
    const uidlist = join(b, 'dovecot-uidlist');
    writeFileSync(uidlist, readFileSync(uidlist, 'utf8').replace(`G${guidA}`, `G${guidB}`));
    const before = await holdings(b);
    assert.ok(Object.keys(before).includes(`INBOX ${guidB}`), JSON.stringify(before));
    await converges(a, b);
    assert.ok(Object.keys(await holdings(b)).includes(`INBOX ${guidA}`), "B's INBOX took A's GUID");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it("the planner joins INBOXes even when one side logged the other's INBOX GUID as deleted", () => {
  const box = (guid: string, messages: number): MailboxStatus => ({ name: ['INBOX'], guid, uidValidity: 1, uidNext: messages + 1, highestModseq: 1, messages, specialUse: [], subscribed: false });
  const plan = planTreeTwoWay(
    { mailboxes: [box('aa', 20)], changes: [] },
    { mailboxes: [box('bb', 0)], changes: [{ type: 'delete', guid: 'aa', name: ['INBOX'], timestamp: 10 }] },
  );
  assert.deepEqual(plan.a, []);
  assert.deepEqual(plan.b, [{ type: 'set-guid', name: ['INBOX'], guid: 'aa' }]);
});
