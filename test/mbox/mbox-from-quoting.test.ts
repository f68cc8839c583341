/**
 * `>From` lines in bodies without Content-Length come out as Dovecot serves them: as stored.
 * Python's `mailbox` (mboxo) quotes only `From ` and leaves `>>From the website:` alone, mboxrd
 * writers add a `>` to every `>*From `; a reader cannot tell which wrote a file, and Dovecot
 * undoes neither. doveadm is the oracle; a fast-check property covers the bodies in between,
 * read as written and again after mailferry rewrote the file.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { readAll } from '../contract/store-contract.js';
import { grantDovecotAccess, startDovecot, type Dovecot } from '../support/dovecot.js';

const FROM_LINE = 'From MAILER-DAEMON Wed Dec  2 09:57:10 2026\n';

/** What Python 3's mailbox.mbox writes for a text message whose body holds From lines. */
const PYTHON_MBOXO =
  FROM_LINE +
  'From: a@example.org\nSubject: py\nMessage-ID: <py@x>\nContent-Type: text/plain; charset="utf-8"\n' +
  'Content-Transfer-Encoding: 7bit\nMIME-Version: 1.0\n\n' +
  'hello\n>From the start\n>From quoted\n>>From the website:\n>From a@b Sat Jan  3 01:05:34 1996\n\n';

/** Body lines a writer without Content-Length can leave: none is a separator. */
const bodyLine = fc.constantFrom(
  '',
  'text',
  '>From x',
  '>>From the website:',
  '>>>From three',
  '> From spaced',
  '>Fromage',
  'From',
  '>',
  '>From a@b Sat Jan  3 01:05:34 1996',
  ' From indented',
);

const messageOf = (i: number, lines: readonly string[]) =>
  `From: a@example.org\nMessage-ID: <q${i}@example.org>\nSubject: quoting ${i}\n\n${lines.map((l) => `${l}\n`).join('')}`;

/** An mbox without Content-Length: From line, message, an empty line. */
const mboxOf = (messages: readonly string[]) => messages.map((m) => `${FROM_LINE}${m}\n`).join('');

function openAt(root: string, index: string, warn: (m: string) => void = () => {}): MboxStore {
  return MboxStore.open(parseLocation(`mbox:${root}:INDEX=${index}`) as MboxLocation, { create: true, fsync: false, warn });
}

async function served(s: MboxStore): Promise<{ text: string; size: number }[]> {
  const out = [];
  for (const m of (await s.getMessages(['INBOX'])).messages) {
    out.push({ text: (await readAll(await s.openMessage(['INBOX'], m.uid))).toString('latin1'), size: m.size });
  }
  return out;
}

describe('mbox: >From lines are served as stored', () => {
  let scratch: string;
  let d: Dovecot;
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'mailferry-mbox-quoting-'));
    d = await startDovecot({ users: ['alice'], imap: false });
  });
  after(async () => {
    await d?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  async function doveadmTexts(root: string, count: number): Promise<string[]> {
    await grantDovecotAccess(join(root, '..'));
    const location = `mbox:${root}:INBOX=${join(root, 'inbox')}:INDEX=${join(root, '..', 'dovecot-index')}`;
    const out: string[] = [];
    for (let uid = 1; uid <= count; uid++) {
      const text = await d.doveadm(['fetch', 'text', 'mailbox', 'INBOX', 'uid', String(uid)], { user: 'alice', mailLocation: location });
      assert.ok(text.startsWith('text:\n'), text);
      out.push(text.slice('text:\n'.length));
    }
    return out;
  }

  it("a Python mailbox (mboxo) file reads as doveadm reads it: '>>From the website:' stays", async () => {
    const root = join(scratch, 'python', 'mail');
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'inbox'), PYTHON_MBOXO, 'latin1');
    const [dovecot] = await doveadmTexts(root, 1);
    assert.match(dovecot!, /^>>From the website:$/m, 'the oracle keeps the line');
    const s = openAt(root, join(scratch, 'python', 'index'));
    try {
      const [ours] = await served(s);
      assert.equal(ours!.text, dovecot);
      assert.equal(ours!.size, Buffer.byteLength(ours!.text, 'latin1'));
    } finally {
      await s.close();
    }
  });

  it('generated bodies read as doveadm reads them', async () => {
    const bodies = fc.sample(fc.array(bodyLine, { minLength: 1, maxLength: 12 }), { numRuns: 25, seed: 11 });
    const messages = bodies.map((lines, i) => messageOf(i, lines));
    const root = join(scratch, 'generated', 'mail');
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'inbox'), mboxOf(messages), 'latin1');
    const dovecot = await doveadmTexts(root, messages.length);
    assert.deepEqual(dovecot, messages, 'Dovecot serves each body as stored');
    const s = openAt(root, join(scratch, 'generated', 'index'));
    try {
      assert.deepEqual((await served(s)).map((m) => m.text), dovecot);
    } finally {
      await s.close();
    }
  });

  it('property: every body is served as stored, with its size, before and after a rewrite', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(bodyLine, { maxLength: 10 }), { minLength: 1, maxLength: 4 }), async (bodies) => {
        const dir = join(scratch, 'property', String(run++));
        const root = join(dir, 'mail');
        mkdirSync(root, { recursive: true });
        const messages = bodies.map((lines, i) => messageOf(i, lines));
        writeFileSync(join(root, 'inbox'), mboxOf(messages), 'latin1');
        const s = openAt(root, join(dir, 'index'));
        try {
          const expected = messages.map((text) => ({ text, size: Buffer.byteLength(text, 'latin1') }));
          assert.deepEqual(await served(s), expected);
          // The file has no X-UIDs yet: a flag change rewrites it, adding Content-Length.
          const first = (await s.getMessages(['INBOX'])).messages[0]!;
          await s.updateFlags(['INBOX'], [{ uid: first.uid, flags: ['\\Seen'], keywords: [] }]);
          assert.deepEqual(await served(s), expected);
        } finally {
          await s.close();
        }
      }),
      { numRuns: 40 },
    );
  });
});
