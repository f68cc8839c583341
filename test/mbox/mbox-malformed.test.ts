/**
 * Malformed and unusual mbox files: each reads sensibly or stops with an error naming the file
 * and the byte offset; nothing is lost without a word.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MailferryError } from '../../src/model/errors.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { message, readAll, req } from '../contract/store-contract.js';

describe('mbox: malformed input', () => {
  let dir: string;
  let inbox: string;
  let warnings: string[];
  let loc: MboxLocation;
  const open = () => MboxStore.open(loc, { create: true, fsync: false, warn: (m) => warnings.push(m) });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-bad-'));
    loc = parseLocation(`mbox:${join(dir, 'mail')}`) as MboxLocation;
    open().close();
    inbox = join(dir, 'mail', 'inbox');
    warnings = [];
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function bodies(s: MboxStore): Promise<string[]> {
    const out: string[] = [];
    for (const m of (await s.getMessages(['INBOX'])).messages) out.push((await readAll(await s.openMessage(['INBOX'], m.uid))).toString('latin1'));
    return out;
  }

  it('a file without a leading From line stops with a data error naming file and offset', async () => {
    writeFileSync(inbox, 'Subject: no separator\n\nbody\n');
    const s = open();
    await assert.rejects(s.getMessages(['INBOX']), (e: unknown) => e instanceof MailferryError && e.kind === 'data' && e.exitCode === 65 && e.message.includes(inbox) && /byte offset 0/.test(e.message));
    await s.close();
  });

  it('an unquoted From line with a valid date splits the message, as in every mbox reader; one without a date does not', async () => {
    writeFileSync(inbox, 'From a@b Mon Jan  1 10:00:00 2024\nSubject: one\n\nline\nFrom here on, no date\nFrom c@d Tue Jan  2 10:00:00 2024\nnot a header\n\n');
    const s = open();
    assert.deepEqual(await bodies(s), ['Subject: one\n\nline\nFrom here on, no date', 'not a header\n']);
    await s.close();
  });

  it('a From line inside a body is safe behind a true Content-Length (Dovecot, mailferry)', async () => {
    const s = open();
    const body = message('cl', 'first\n\nFrom evil@x Mon Jan  1 10:00:00 2024\nSubject: fake\n\nnot a message\n');
    await s.saveMessages(['INBOX'], [req(body), req(message('after'))]);
    assert.deepEqual(await bodies(s), [body.toString('latin1'), message('after').toString('latin1')]);
    await s.close();
  });

  it('a Content-Length that lies is ignored with a warning naming the offset; From lines decide', async () => {
    writeFileSync(inbox, 'From a@b Mon Jan  1 10:00:00 2024\nSubject: one\nContent-Length: 3\n\nhello world\n\nFrom a@b Mon Jan  1 10:00:00 2024\nSubject: two\nContent-Length: 9999\n\nbye\n\n');
    const s = open();
    assert.deepEqual(await bodies(s), ['Subject: one\n\nhello world\n', 'Subject: two\n\nbye\n']);
    assert.ok(warnings.some((w) => w.includes(inbox) && /byte offset 0 has a Content-Length \(3\)/.test(w)), warnings.join('\n'));
    await s.close();
  });

  it('an append of mailferry cut off mid-body is left out with a warning, then removed by the next write', async () => {
    let s = open();
    const saved = await s.saveMessages(['INBOX'], [req(message('whole'))]);
    await s.close();
    const whole = statSync(inbox).size;
    writeFileSync(inbox, Buffer.concat([readFileSync(inbox), Buffer.from('From MAILER-DAEMON  Mon Jan  1 10:00:00 2024\nSubject: cut\nX-UID: 2\nContent-Length: 9999999999999999\nX-Keywords: \n\nonly a little')]));
    s = open();
    assert.deepEqual((await s.getMessages(['INBOX'])).messages.map((m) => m.uid), [saved[0]!.uid]);
    assert.ok(warnings.some((w) => w.includes(inbox) && w.includes(`byte offset ${whole}`) && /incomplete/.test(w)), warnings.join('\n'));
    await s.saveMessages(['INBOX'], [req(message('next'))]);
    assert.ok(warnings.some((w) => /removing the incomplete tail/.test(w)));
    assert.deepEqual(await bodies(s), [message('whole').toString(), message('next').toString()]);
    assert.ok(!readFileSync(inbox, 'latin1').includes('only a little'));
    await s.close();
  });

  it('a cut last message of another writer reads as what is there, with a warning when its Content-Length says so', async () => {
    writeFileSync(inbox, 'From a@b Mon Jan  1 10:00:00 2024\nSubject: one\n\nfull\n\nFrom a@b Mon Jan  1 10:00:00 2024\nSubject: two\n\npart');
    let s = open();
    assert.deepEqual(await bodies(s), ['Subject: one\n\nfull\n', 'Subject: two\n\npart']);
    await s.close();
    writeFileSync(inbox, 'From a@b Mon Jan  1 10:00:00 2024\nSubject: cut\nContent-Length: 500\n\npart');
    s = open();
    assert.deepEqual(await bodies(s), ['Subject: cut\n\npart']);
    assert.ok(warnings.some((w) => w.includes(inbox) && /byte offset 0 has a Content-Length \(500\)/.test(w)));
    await s.close();
  });

  it('NUL bytes and CR-LF line ends are kept byte for byte', async () => {
    const s = open();
    const nul = Buffer.concat([message('nul'), Buffer.from([0, 0, 1, 2, 0x0a, 0]), Buffer.from('\nend\n')]);
    const crlf = Buffer.from('From: a@b\r\nSubject: crlf\r\nMessage-ID: <c@r>\r\n\r\nline\r\nFrom x Mon Jan  1 10:00:00 2024\r\n');
    const noEoh = Buffer.from('Subject: no body and no final newline');
    await s.saveMessages(['INBOX'], [req(nul), req(crlf), req(noEoh)]);
    assert.deepEqual(await bodies(s), [nul, crlf, noEoh].map((b) => b.toString('latin1')));
    await s.close();
  });

  it('reads a CRLF mbox written on another system', async () => {
    writeFileSync(inbox, 'From a@b Mon Jan  1 10:00:00 2024\r\nSubject: one\r\nStatus: RO\r\n\r\nbody\r\n\r\nFrom a@b Mon Jan  1 10:00:00 2024\r\nSubject: two\r\n\r\nbye\r\n');
    const s = open();
    assert.deepEqual(await bodies(s), ['Subject: one\r\n\r\nbody\r\n', 'Subject: two\r\n\r\nbye']);
    assert.deepEqual((await s.getMessages(['INBOX'])).messages[0]!.flags, ['\\Seen']);
    await s.close();
  });

  it('the pseudo message of UW-IMAP is no message, and its X-IMAP gives UIDVALIDITY and UIDNEXT', async () => {
    writeFileSync(inbox, "From MAILER-DAEMON Mon Jan  1 10:00:00 2024\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1234567 0000000041 kw\n\ntext\n\nFrom a@b Mon Jan  1 10:00:00 2024\nSubject: real\n\nbody\n");
    const s = open();
    const st = await s.mailboxStatus(['INBOX']);
    assert.deepEqual([st?.messages, st?.uidValidity, st?.uidNext], [1, 1234567, 43]);
    await s.close();
  });

  it('50 MB messages stream in and out, and a file holding one scans in bounded memory', async () => {
    const big = 50 * 1024 * 1024;
    const line = Buffer.from(`${'x'.repeat(75)}\n`);
    const fd = openSync(inbox, 'w');
    const hash = createHash('sha1');
    const header = Buffer.from('From a@b Mon Jan  1 10:00:00 2024\nSubject: big\n\n');
    writeSync(fd, header);
    hash.update(header.subarray(header.indexOf('\n') + 1));
    const block = Buffer.concat(Array.from({ length: 8192 }, () => line));
    for (let n = 0; n < big; n += block.length) {
      writeSync(fd, block);
      hash.update(block);
    }
    writeSync(fd, Buffer.from('\nFrom a@b Mon Jan  1 10:00:00 2024\nSubject: small\n\nx\n'));
    closeSync(fd);
    const rssBefore = process.memoryUsage().rss;
    const s = open();
    const { messages } = await s.getMessages(['INBOX']);
    assert.deepEqual(messages.map((m) => m.uid), [1, 2]);
    assert.ok(process.memoryUsage().rss - rssBefore < 40 * 1024 * 1024, 'the scan did not hold the message in memory');
    const back = createHash('sha1');
    let size = 0;
    for await (const c of await s.openMessage(['INBOX'], 1)) {
      back.update(c as Buffer);
      size += (c as Buffer).length;
    }
    assert.equal(size, messages[0]!.size);
    assert.equal(back.digest('hex'), hash.digest('hex'));
    // Saved through the store: streamed to the file, Content-Length filled in afterwards.
    const [saved] = await s.saveMessages(['INBOX'], [{ flags: [], keywords: [], receivedDate: Date.now(), body: () => Readable.from((function* () { yield Buffer.from('Subject: big too\n\n'); for (let n = 0; n < big; n += block.length) yield block; })()) }]);
    const got = (await s.getMessages(['INBOX'])).messages.find((m) => m.uid === saved!.uid)!;
    assert.equal(got.size, 'Subject: big too\n\n'.length + Math.ceil(big / block.length) * block.length);
    await s.close();
  });
});
