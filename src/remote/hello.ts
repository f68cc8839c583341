/**
 * The handshake, pure: before any frame, each side sends one line
 *
 *   MAILFERRY <TAB> <major>.<minor> <TAB> <feature>,<feature>... <TAB> <nonce> <LF>
 *
 * without waiting for the other's. The nonce, random for each connection, tells our own hello
 * coming back (a far command such as `cat` echoing its input) from a peer's; a peer that sends
 * none is still one. Peers of the same major version talk, using the features
 * both name; any other major is refused with both versions in the message (exit 78), so an
 * old mailferry on the far side says so instead of misreading frames. A line is short, so text
 * a login script prints, or a shell's "command not found", is caught here and quoted.
 */
import { MailferryError } from '../model/errors.js';

export const HELLO_MAGIC = 'MAILFERRY';
export const PROTOCOL_MAJOR = 1;
/** 1: full listings may travel as differences from the last one (the listing-delta feature). */
export const PROTOCOL_MINOR = 1;
export const PROTOCOL_VERSION = `${PROTOCOL_MAJOR}.${PROTOCOL_MINOR}`;
/** A hello line is never longer; a peer that sends more without a line end is not one. */
export const MAX_HELLO_BYTES = 1024;

export interface Hello {
  major: number;
  minor: number;
  features: string[];
  /** The sender's nonce for this connection, when it sent one. */
  nonce?: string;
}

const NONCE = /^[0-9a-f]{16,64}$/;

export function encodeHello(features: readonly string[], nonce?: string): Buffer {
  for (const f of features) if (!/^[a-z0-9-]{1,32}$/.test(f)) throw new RangeError(`bad feature name ${f}`);
  if (nonce !== undefined && !NONCE.test(nonce)) throw new RangeError(`bad hello nonce ${nonce}`);
  return Buffer.from(`${HELLO_MAGIC}\t${PROTOCOL_VERSION}\t${features.join(',')}${nonce !== undefined ? `\t${nonce}` : ''}\n`);
}

/** The peer is our own hello coming back: whatever runs there echoes what it is sent. */
export function echoedHello(): MailferryError {
  return new MailferryError(
    'config',
    "the peer sent back our own hello: the far command echoes its input instead of serving a store (is dsync_remote_cmd right, and does it run 'mailferry dsync-server' on the far side?)",
  );
}

/** What the peer sent, shown safely: printable ASCII, cut short. */
export function quotePeerBytes(bytes: Buffer): string {
  const text = bytes.subarray(0, 120).toString('latin1').replace(/[^\x20-\x7e]+/g, ' ').trim();
  return `'${text}${bytes.length > 120 ? '...' : ''}'`;
}

function notMailferry(line: Buffer): MailferryError {
  return new MailferryError(
    'config',
    `the peer does not speak mailferry's protocol: it sent ${quotePeerBytes(line)} (is dsync_remote_cmd right, and does the far side's login print nothing on stdout?)`,
  );
}

/** Parses one hello line (without its LF). Throws a config error for a peer we cannot talk to. */
export function parseHello(line: Buffer): Hello {
  const text = line.toString('latin1').replace(/\r$/, '');
  const fields = text.split('\t');
  if (fields[0] !== HELLO_MAGIC || fields.length < 3) throw notMailferry(line);
  const m = /^(\d{1,6})\.(\d{1,6})$/.exec(fields[1]!);
  if (!m) throw notMailferry(line);
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (major !== PROTOCOL_MAJOR) {
    const who = major > PROTOCOL_MAJOR ? 'newer' : 'older';
    throw new MailferryError(
      'config',
      `incompatible peer: it speaks mailferry protocol ${major}.${minor} and this mailferry speaks ${PROTOCOL_VERSION}; the peer's mailferry is ${who}: run the same major version on both sides`,
    );
  }
  const features = fields[2] === '' ? [] : fields[2]!.split(',').filter((f) => /^[a-z0-9-]{1,32}$/.test(f));
  const nonce = fields[3] !== undefined && NONCE.test(fields[3]) ? fields[3] : undefined;
  return { major, minor, features, ...(nonce !== undefined ? { nonce } : {}) };
}

/**
 * Finds the end of the hello line in what has arrived so far: the line and the bytes after it
 * (the first frames), or undefined when more is needed. Too long without a line end: refused.
 */
export function splitHello(received: Buffer): { line: Buffer; rest: Buffer } | undefined {
  const nl = received.indexOf(0x0a);
  if (nl < 0) {
    if (received.length > MAX_HELLO_BYTES) throw notMailferry(received);
    return undefined;
  }
  if (nl > MAX_HELLO_BYTES) throw notMailferry(received);
  return { line: received.subarray(0, nl), rest: received.subarray(nl + 1) };
}
