// A DNS server that never answers, for the checks that must give up on DNS within their own bound.
import { createSocket } from 'node:dgram';
import { DnsClient } from '../../src/net/dns.js';

/** A DNS client (5 s per try, one try) whose server reads every question and answers none. */
export async function silentDns(): Promise<{ readonly dns: DnsClient; close(): void }> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const server = `127.0.0.1:${socket.address().port}`;
  return {
    dns: new DnsClient({ servers: [server], timeoutMs: 5000, tries: 1 }),
    close: () => socket.close(),
  };
}
