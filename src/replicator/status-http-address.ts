/**
 * Where the replicator's status page listens: `HOST:PORT` or `[IPV6]:PORT`, the port always
 * given (0 takes any free port; the log says which). Pure, so the setting is checked when the
 * configuration is read and the option when the command line is.
 */
export interface HttpAddress {
  host: string;
  port: number;
}

/** The address, or an Error saying in a few words what is wrong with it. */
export function parseHttpAddress(value: string): HttpAddress {
  const bad = (why: string) => new Error(`${why} (expected HOST:PORT or [IPV6]:PORT, such as 127.0.0.1:9180)`);
  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const m = /^\[([0-9A-Fa-f:.]+)\]:([^:]*)$/.exec(value);
    if (!m) throw bad(`'${value}' is not [IPV6]:PORT`);
    host = m[1]!;
    portText = m[2]!;
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) throw bad(`'${value}' has no port`);
    if (value.indexOf(':') !== colon) throw bad('an IPv6 address goes in [ ]');
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (!/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/.test(host)) throw bad(`'${host}' is not a host name or address`);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw bad(`'${portText}' is not a port number`);
  return { host, port: Number(portText) };
}
