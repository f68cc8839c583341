/**
 * Which client addresses count as one for the limits and the back-off: an IPv4 address, or an
 * IPv6 /64 (one host's network; a client holding a /64 can pick any of its addresses, so
 * counting them one by one would limit nothing). IPv4 written as IPv6 counts as IPv4.
 */
import { isIPv6 } from 'node:net';

function ipv6Groups(address: string): string[] | undefined {
  const zoneless = address.replace(/%.*$/, '');
  const halves = zoneless.split('::');
  if (halves.length > 2) return undefined;
  const part = (s: string) => (s === '' ? [] : s.split(':'));
  let head = part(halves[0]!);
  let tail = halves.length === 2 ? part(halves[1]!) : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4 is handled before) takes two groups.
  const last = (halves.length === 2 ? tail : head).at(-1);
  if (last?.includes('.')) {
    const o = last.split('.').map(Number);
    const groups = [((o[0]! << 8) | o[1]!).toString(16), ((o[2]! << 8) | o[3]!).toString(16)];
    if (halves.length === 2) tail = [...tail.slice(0, -1), ...groups];
    else head = [...head.slice(0, -1), ...groups];
  }
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  return [...head, ...Array<string>(fill).fill('0'), ...tail].map((g) => parseInt(g, 16).toString(16));
}

export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const groups = ipv6Groups(address);
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : address;
}

export function isLoopback(host: string): boolean {
  return /^127\./.test(host) || host === '::1' || host === 'localhost' || /^::ffff:127\./i.test(host);
}
