/**
 * Every AFTERSMTP_* environment variable, in one table: its name, default, parser and the line of
 * documentation that docs/OPERATIONS.md shows. Adding a setting means adding one entry here; the
 * loader validates it at start-up and the docs table is generated from this list (and checked for
 * being current by a test).
 */
import { isAbsolute } from 'node:path';
import { checkDomain } from '../identity/did.js';
import { SUITE_IDS, type SuiteId } from '../identity/suites.js';
import { parseDnsServers } from '../amp/discovery.js';
import { parseRelayRoutes } from '../amp/relay/routes.js';
import { parsePolicySpec } from '../ledger/policy.js';
import { parseVerifierKey } from '../ledger/note.js';
import { parseWitnessList } from '../witness/witnesser.js';
import { parseListenAddress, type ListenAddress } from '../net/listen.js';

export { parseListenAddress, type ListenAddress };
import { checkRecipientDelimiter } from '../routing/addresses.js';
import { parseWebhookList } from '../script/webhook.js';
import { parseDnsblZones } from '../pipeline/dnsbl.js';
import { parseTrustedSealers } from '../pipeline/dmarc.js';

export interface Setting<T, D extends string | undefined = string | undefined> {
  /** The environment variable, always AFTERSMTP_*. */
  readonly env: string;
  /** The default as written in the environment (undefined: unset means "none"). */
  readonly default: D;
  /** One sentence for docs/OPERATIONS.md. */
  readonly doc: string;
  /** Turns the raw string into a value or throws an Error whose message says what is expected. */
  readonly parse: (raw: string) => T;
}

function setting<T, D extends string | undefined>(s: Setting<T, D>): Setting<T, D> {
  return s;
}

function integer(min: number, max: number) {
  return (raw: string): number => {
    if (!/^[0-9]+$/.test(raw))
      throw new Error(`expected a whole number, got ${JSON.stringify(raw)}`);
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new Error(`expected a number from ${min} to ${max}, got ${raw}`);
    }
    return n;
  };
}

function yesNo(raw: string): boolean {
  if (raw === 'yes' || raw === 'true') return true;
  if (raw === 'no' || raw === 'false') return false;
  throw new Error(`expected yes or no, got ${JSON.stringify(raw)}`);
}

function oneOf<T extends string>(values: readonly T[]) {
  return (raw: string): T => {
    if (!(values as readonly string[]).includes(raw)) {
      throw new Error(`expected one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
    }
    return raw as T;
  };
}

/** A listen address, or `off` (the listener is not started). */
function listenOrOff(raw: string): ListenAddress | 'off' {
  return raw === 'off' ? 'off' : parseListenAddress(raw);
}

function absolutePath(raw: string): string {
  if (!isAbsolute(raw) || raw.includes('\0')) throw new Error('expected an absolute path');
  return raw;
}

/** `<burst>/<seconds to refill it>`, e.g. 10/60. */
function rateLimit(raw: string): { capacity: number; refillPerSecond: number } {
  const m = /^([0-9]{1,6})\/([0-9]{1,6})$/.exec(raw);
  if (m === null || Number(m[1]) < 1 || Number(m[2]) < 1) {
    throw new Error(`expected <burst>/<seconds>, both at least 1, got ${JSON.stringify(raw)}`);
  }
  return { capacity: Number(m[1]), refillPerSecond: Number(m[1]) / Number(m[2]) };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const SETTINGS = {
  dataDir: setting({
    env: 'AFTERSMTP_DATA_DIR',
    default: './data',
    doc: 'Directory for the embedded stores (LMDB, SQLite), key files and generated certificates.',
    parse: (raw) => {
      if (raw.length === 0 || raw.includes('\0')) throw new Error('expected a directory path');
      return raw;
    },
  }),
  domain: setting({
    env: 'AFTERSMTP_DOMAIN',
    default: 'aftersmtp.localhost',
    doc: 'The mail domain this gateway serves; its gateway identity is did:aftersmtp:<domain>:gateway.',
    parse: (raw) => checkDomain(raw),
  }),
  suite: setting({
    env: 'AFTERSMTP_SUITE',
    default: 'hybrid-v1',
    doc: 'Key suite for keys this gateway generates: hybrid-v1 (X-Wing + Ed25519/ML-DSA-65) or classic-v1 (X25519 + Ed25519).',
    parse: oneOf<SuiteId>(SUITE_IDS),
  }),
  passphraseFile: setting({
    env: 'AFTERSMTP_PASSPHRASE_FILE',
    default: undefined,
    doc: 'File holding the passphrase of the gateway key file. Unset: AFTERSMTP_PASSPHRASE, else a random one generated into <data dir>/gateway.pass (mode 0600) on first start.',
    parse: absolutePath,
  }),
  adminListen: setting({
    env: 'AFTERSMTP_ADMIN_LISTEN',
    default: '127.0.0.1:9464',
    doc: 'Admin HTTP listener (GET /healthz, GET /metrics in Prometheus format). Keep it on loopback.',
    parse: parseListenAddress,
  }),
  maxEnvelopeBytes: setting({
    env: 'AFTERSMTP_MAX_ENVELOPE_BYTES',
    default: String(32 * 1024 * 1024),
    doc: 'Largest encoded AMP envelope accepted or produced, in bytes; larger input is refused before it is decoded.',
    parse: integer(4096, 1024 * 1024 * 1024),
  }),
  logLevel: setting({
    env: 'AFTERSMTP_LOG_LEVEL',
    default: 'info',
    doc: 'Log level of the structured (JSON) log on standard output.',
    parse: oneOf(LOG_LEVELS),
  }),
  quicListen: setting({
    env: 'AFTERSMTP_QUIC_LISTEN',
    default: '127.0.0.1:4434',
    doc: 'UDP address of the AMP relay (QUIC, ALPN amp/1) that peer gateways connect to. The default serves the machine itself; production sets 0.0.0.0:4434.',
    parse: parseListenAddress,
  }),
  quicMaxConnections: setting({
    env: 'AFTERSMTP_QUIC_MAX_CONNECTIONS',
    default: '1024',
    doc: 'QUIC connections open at once (inbound and outbound); a peer over the cap gets CONNECTION_REFUSED.',
    parse: integer(1, 1_000_000),
  }),
  quicMaxConnectionsPerAddress: setting({
    env: 'AFTERSMTP_QUIC_MAX_CONNECTIONS_PER_ADDRESS',
    default: '16',
    doc: 'Inbound QUIC connections open at once from one IP address.',
    parse: integer(1, 1_000_000),
  }),
  quicMaxStreamsPerConnection: setting({
    env: 'AFTERSMTP_QUIC_MAX_STREAMS_PER_CONNECTION',
    default: '256',
    doc: 'Messages (bidirectional streams) a peer may have in flight on one QUIC connection.',
    parse: integer(1, 65_536),
  }),
  quicMaxFrameBytes: setting({
    env: 'AFTERSMTP_QUIC_MAX_FRAME_BYTES',
    default: String(32 * 1024 * 1024),
    doc: 'Largest AMP message accepted over QUIC, in bytes; a larger declared length is refused (TOO_LARGE) before any body byte is read.',
    parse: integer(1024, 1024 * 1024 * 1024),
  }),
  quicMaxBufferedBytes: setting({
    env: 'AFTERSMTP_QUIC_MAX_BUFFERED_BYTES',
    default: String(256 * 1024 * 1024),
    doc: 'Message bytes the QUIC endpoint holds in total (received so far or being processed), counted as they arrive; a new message that finds its budget full is refused BUSY.',
    parse: integer(64 * 1024, 2 ** 40),
  }),
  quicUnverifiedBufferedBytes: setting({
    env: 'AFTERSMTP_QUIC_UNVERIFIED_BUFFERED_BYTES',
    default: String(64 * 1024 * 1024),
    doc: 'Part of AFTERSMTP_QUIC_MAX_BUFFERED_BYTES that connections whose certificate is not yet bound to a verified gateway record may hold together; the rest is kept for verified peers.',
    parse: integer(64 * 1024, 2 ** 40),
  }),
  quicPeerBufferedBytes: setting({
    env: 'AFTERSMTP_QUIC_PEER_BUFFERED_BYTES',
    default: String(64 * 1024 * 1024),
    doc: 'Message bytes one peer may hold at once: one certificate, and for unverified connections also one IP address; its further messages wait unread. At least the largest message plus 5.',
    parse: integer(64 * 1024, 2 ** 40),
  }),
  quicConnectionWindowBytes: setting({
    env: 'AFTERSMTP_QUIC_CONNECTION_WINDOW_BYTES',
    default: String(64 * 1024 * 1024),
    doc: 'Message bytes one QUIC connection may hold, also its flow-control window; at least the largest message plus 5.',
    parse: integer(64 * 1024, 2 ** 32 - 1),
  }),
  quicQueueDepth: setting({
    env: 'AFTERSMTP_QUIC_QUEUE_DEPTH',
    default: '1024',
    doc: 'Messages handed to the pipeline and not yet answered; when full, new streams are refused BUSY and no flow-control credit is extended.',
    parse: integer(1, 1_000_000),
  }),
  quicRetryThreshold: setting({
    env: 'AFTERSMTP_QUIC_RETRY_THRESHOLD',
    default: '256',
    doc: 'Inbound QUIC connections above which new ones must pass address validation (Retry); 0 always requires it.',
    parse: integer(0, 1_000_000),
  }),
  quicHandshakeTimeoutMs: setting({
    env: 'AFTERSMTP_QUIC_HANDSHAKE_TIMEOUT_MS',
    default: '5000',
    doc: 'A QUIC handshake not complete after this many milliseconds is abandoned.',
    parse: integer(100, 600_000),
  }),
  quicIdleTimeoutMs: setting({
    env: 'AFTERSMTP_QUIC_IDLE_TIMEOUT_MS',
    default: '30000',
    doc: 'QUIC idle timeout in milliseconds (max_idle_timeout, RFC 9000 section 10.1).',
    parse: integer(1000, 3_600_000),
  }),
  quicStreamTimeoutMs: setting({
    env: 'AFTERSMTP_QUIC_STREAM_TIMEOUT_MS',
    default: '30000',
    doc: 'A message must arrive completely (inbound) or be answered (outbound) within this many milliseconds of its stream opening.',
    parse: integer(100, 3_600_000),
  }),
  quicConnectionsPerPeer: setting({
    env: 'AFTERSMTP_QUIC_CONNECTIONS_PER_PEER',
    default: '1',
    doc: 'Outbound QUIC connections pooled per peer gateway; messages are spread over them.',
    parse: integer(1, 64),
  }),
  grpcListen: setting({
    env: 'AFTERSMTP_GRPC_LISTEN',
    default: '127.0.0.1:4433',
    doc: 'Client API listener (gRPC over TLS with the generated certificate). Production sets 0.0.0.0:4433.',
    parse: parseListenAddress,
  }),
  grpcMaxMessageBytes: setting({
    env: 'AFTERSMTP_GRPC_MAX_MESSAGE_BYTES',
    default: String(33 * 1024 * 1024),
    doc: 'Largest DispatchMessage request, and largest request of a DispatchStream call (the only ones with a large body, read only once the token is valid), in bytes; larger ones are refused (RESOURCE_EXHAUSTED) from the length prefix. At least AFTERSMTP_MAX_ENVELOPE_BYTES + 16 (a DispatchMessage carries one envelope).',
    parse: integer(16 * 1024, 64 * 1024 * 1024),
  }),
  hostname: setting({
    env: 'AFTERSMTP_HOSTNAME',
    default: undefined,
    doc: "This gateway's host name: the SMTP greeting, Received lines and Authentication-Results. Unset: the machine's host name.",
    parse: (raw) => {
      if (!/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(raw)) {
        throw new Error(`expected a host name, got ${JSON.stringify(raw)}`);
      }
      return raw.toLowerCase();
    },
  }),
  smtpListen: setting({
    env: 'AFTERSMTP_SMTP_LISTEN',
    default: '127.0.0.1:25',
    doc: 'SMTP listener for mail from the internet (MX, port 25: the served domains only, no AUTH, never relays), or `off`. Production sets 0.0.0.0:25; a non-root service needs CAP_NET_BIND_SERVICE (docs/OPERATIONS.md).',
    parse: listenOrOff,
  }),
  submissionListen: setting({
    env: 'AFTERSMTP_SUBMISSION_LISTEN',
    default: '127.0.0.1:587',
    doc: 'SMTP submission listener (port 587: STARTTLS, then AUTH required), or `off`.',
    parse: listenOrOff,
  }),
  submissionsListen: setting({
    env: 'AFTERSMTP_SUBMISSIONS_LISTEN',
    default: '127.0.0.1:465',
    doc: 'SMTP submission over implicit TLS (port 465, RFC 8314; AUTH required), or `off`.',
    parse: listenOrOff,
  }),
  smtpTlsCert: setting({
    env: 'AFTERSMTP_SMTP_TLS_CERT',
    default: undefined,
    doc: 'PEM certificate chain for SMTP TLS (STARTTLS and port 465), with AFTERSMTP_SMTP_TLS_KEY. Unset: the generated certificate (<data dir>/tls.crt).',
    parse: absolutePath,
  }),
  smtpTlsKey: setting({
    env: 'AFTERSMTP_SMTP_TLS_KEY',
    default: undefined,
    doc: 'PEM private key of AFTERSMTP_SMTP_TLS_CERT.',
    parse: absolutePath,
  }),
  smtpMaxMessageBytes: setting({
    env: 'AFTERSMTP_SMTP_MAX_MESSAGE_BYTES',
    default: undefined,
    doc: 'Largest message SMTP accepts (advertised as SIZE), in bytes; it must fit an envelope (AFTERSMTP_MAX_ENVELOPE_BYTES less 64 KiB). Unset: 25 MiB, or less when envelopes are smaller.',
    parse: integer(1024, 1024 * 1024 * 1024),
  }),
  smtpMaxRecipients: setting({
    env: 'AFTERSMTP_SMTP_MAX_RECIPIENTS',
    default: '100',
    doc: 'Recipients per SMTP message; more get 452 4.5.3 (RFC 5321 4.5.3.1.8 asks for at least 100).',
    parse: integer(1, 10_000),
  }),
  smtpMaxConnections: setting({
    env: 'AFTERSMTP_SMTP_MAX_CONNECTIONS',
    default: '1000',
    doc: 'SMTP connections open at once, over all SMTP listeners; more are closed at once.',
    parse: integer(1, 100_000),
  }),
  smtpMaxConnectionsPerAddress: setting({
    env: 'AFTERSMTP_SMTP_MAX_CONNECTIONS_PER_ADDRESS',
    default: '20',
    doc: 'SMTP connections open at once from one client address.',
    parse: integer(1, 100_000),
  }),
  smtpCommandsPerMinute: setting({
    env: 'AFTERSMTP_SMTP_COMMANDS_PER_MINUTE',
    default: '1200',
    doc: 'SMTP commands per minute from one client address, over all its connections; more get 421 4.7.0 and the connection is closed.',
    parse: integer(10, 1_000_000),
  }),
  smtpDelayReject: setting({
    env: 'AFTERSMTP_SMTP_DELAY_REJECT',
    default: 'yes',
    doc: "As Postfix smtpd_delay_reject: yes judges the client's access entry (connect) and the sender's (MAIL FROM) at the first RCPT TO, so a refusal names the sender and recipient in the log and the dialogue makes two fewer steps; no refuses a client at its greeting and a sender at MAIL FROM.",
    parse: yesNo,
  }),
  smtpDnsbl: setting({
    env: 'AFTERSMTP_SMTP_DNSBL',
    default: '',
    doc: "DNS blocklists of port 25's clients, as Postfix reject_rbl_client: zones separated by commas, each zone[=filter] (e.g. zen.spamhaus.org=127.0.0.[2..11]). A listed client is refused 554 5.7.1 at its first RCPT (at connect with AFTERSMTP_SMTP_DELAY_REJECT=no), unless access_map says OK for its address; a zone that does not answer blocks nothing. Empty: none.",
    parse: parseDnsblZones,
  }),
  smtpRhsbl: setting({
    env: 'AFTERSMTP_SMTP_RHSBL',
    default: '',
    doc: "Domain blocklists of port 25's senders, as Postfix reject_rhsbl_sender: zones separated by commas, each zone[=filter] (e.g. dbl.spamhaus.org=127.0.1.[2..99]). The reverse path's domain is looked up; a listed sender is refused 554 5.7.1 at MAIL FROM (at the first RCPT with AFTERSMTP_SMTP_DELAY_REJECT=yes), unless access_map says OK for the client or the sender; the null sender is not looked up. Empty: none.",
    parse: parseDnsblZones,
  }),
  smtpRejectUnknownSenderDomain: setting({
    env: 'AFTERSMTP_SMTP_REJECT_UNKNOWN_SENDER_DOMAIN',
    default: 'no',
    doc: "As Postfix reject_unknown_sender_domain, for port 25: yes refuses a reverse path whose domain does not exist or has neither MX nor address records (450 4.1.8, a temporary refusal as Postfix's), and one whose domain publishes a null MX (550 5.7.27, RFC 7505), unless access_map says OK for the client or the sender; a lookup that fails refuses nothing.",
    parse: yesNo,
  }),
  smtpDmarcEnforce: setting({
    env: 'AFTERSMTP_SMTP_DMARC_ENFORCE',
    default: 'no',
    doc: "yes acts on the From domain's DMARC policy for port 25 mail that fails DMARC: reject is refused (550 5.7.1 after DATA, RFC 7489 §6.7), quarantine is filed in the recipients' Junk folders; pct honoured; not for a client access_map says OK for, nor for mail a trusted ARC sealer vouches for (AFTERSMTP_SMTP_ARC_TRUSTED_SEALERS).",
    parse: yesNo,
  }),
  smtpArcTrustedSealers: setting({
    env: 'AFTERSMTP_SMTP_ARC_TRUSTED_SEALERS',
    default: '',
    doc: "Domains (and their subdomains) whose ARC seals override the DMARC policy of AFTERSMTP_SMTP_DMARC_ENFORCE, separated by commas: mail that fails DMARC is taken as usual when its ARC chain passed, its last seal is by one of these, and that seal's ARC-Authentication-Results recorded dmarc=pass (a mailing list or forwarder that changed the message, RFC 8617 §7.2.1). Empty: no override.",
    parse: parseTrustedSealers,
  }),
  smtpDnsCheckTimeoutMs: setting({
    env: 'AFTERSMTP_SMTP_DNS_CHECK_TIMEOUT_MS',
    default: '3000',
    doc: "The longest wait for a DNS check of port 25's clients and senders (a blocklist zone of AFTERSMTP_SMTP_DNSBL or AFTERSMTP_SMTP_RHSBL, the sender's domain), ms; a later answer refuses nothing.",
    parse: integer(100, 60_000),
  }),
  smtpMinDataRate: setting({
    env: 'AFTERSMTP_SMTP_MIN_DATA_RATE',
    default: '500',
    doc: 'Bytes per second a client must keep up during DATA (after 10 s), as Postfix smtpd_min_data_rate; slower gets 421 4.4.2.',
    parse: integer(1, 1_000_000_000),
  }),
  smtpTimeout: setting({
    env: 'AFTERSMTP_SMTP_TIMEOUT',
    default: '300',
    doc: 'Seconds an SMTP client may stay silent while the server waits for it (RFC 5321 4.5.3.2).',
    parse: integer(5, 3600),
  }),
  legacyTtl: setting({
    env: 'AFTERSMTP_LEGACY_TTL',
    default: String(30 * 86_400),
    doc: 'Seconds mail from SMTP may wait for its recipient in AMP (the expiry of the envelopes the gateway seals).',
    parse: integer(3600, 366 * 86_400),
  }),
  offrampPort: setting({
    env: 'AFTERSMTP_OFFRAMP_PORT',
    default: '25',
    doc: "TCP port of the mail exchangers the off-ramp delivers to (an mx_record_map route's own port wins). 25 on the internet; another value only in a test network.",
    parse: integer(1, 65535),
  }),
  offrampConnectionCacheMs: setting({
    env: 'AFTERSMTP_OFFRAMP_CONNECTION_CACHE_MS',
    default: '2000',
    doc: 'How long an off-ramp SMTP session stays open after its message, in ms, for the next message to the same server (checked with RSET before it is used; as Postfix smtp_connection_cache_on_demand and smtp_connection_cache_time_limit). 0: a new connection for every message.',
    parse: integer(0, 300_000),
  }),
  offrampCredentialsFile: setting({
    env: 'AFTERSMTP_OFFRAMP_CREDENTIALS_FILE',
    default: undefined,
    doc: 'SMTP AUTH credentials of relay hosts, as Postfix smtp_sasl_password_maps: lines "[host]:port user:password" or "host user:password", mode 0600, read at start and again when it changes (a bad change is refused, the last good file stays in force). A server listed here is reached only over TLS (STARTTLS, or implicit TLS with an smtps: route) with a certificate that verifies for its name, then logged in to. Unset: the off-ramp never logs in.',
    parse: absolutePath,
  }),
  grpcMaxUnauthenticatedBytes: setting({
    env: 'AFTERSMTP_GRPC_MAX_UNAUTHENTICATED_BYTES',
    default: String(64 * 1024),
    doc: 'Largest request of every client API call except DispatchMessage and DispatchStream with a valid token (login, ledger, mailbox calls, reflection); checked from the length prefix, before the body is read.',
    parse: integer(4 * 1024, 64 * 1024 * 1024),
  }),
  grpcMaxInflightBytes: setting({
    env: 'AFTERSMTP_GRPC_MAX_INFLIGHT_BYTES',
    default: String(256 * 1024 * 1024),
    doc: 'Request bytes the client API holds at once over all calls (received and not yet answered); a call that would go over it is refused UNAVAILABLE (retry).',
    parse: integer(1024 * 1024, 2 ** 40),
  }),
  grpcMaxConnections: setting({
    env: 'AFTERSMTP_GRPC_MAX_CONNECTIONS',
    default: '1024',
    doc: 'Client API connections open at once (TCP, TLS handshakes included); more are closed at accept. Keep it well below the open-file limit.',
    parse: integer(1, 1_000_000),
  }),
  grpcMaxConnectionsPerAddress: setting({
    env: 'AFTERSMTP_GRPC_MAX_CONNECTIONS_PER_ADDRESS',
    default: '32',
    doc: 'Client API connections open at once from one IP address.',
    parse: integer(1, 1_000_000),
  }),
  grpcMaxStreamsPerConnection: setting({
    env: 'AFTERSMTP_GRPC_MAX_STREAMS_PER_CONNECTION',
    default: '32',
    doc: 'Concurrent calls (HTTP/2 streams) on one client API connection (SETTINGS_MAX_CONCURRENT_STREAMS).',
    parse: integer(1, 10_000),
  }),
  grpcHandshakeTimeoutMs: setting({
    env: 'AFTERSMTP_GRPC_HANDSHAKE_TIMEOUT_MS',
    default: '10000',
    doc: 'A client API connection whose TLS handshake is not complete this many milliseconds after accept is closed.',
    parse: integer(100, 600_000),
  }),
  grpcIdleTimeoutMs: setting({
    env: 'AFTERSMTP_GRPC_IDLE_TIMEOUT_MS',
    default: '300000',
    doc: 'A client API connection with no call in progress (or no traffic at all) for this many milliseconds is closed.',
    parse: integer(1000, 86_400_000),
  }),
  ledgerPolicy: setting({
    env: 'AFTERSMTP_LEDGER_POLICY',
    default: undefined,
    doc: 'Registration policy per served domain: domain=policy pairs, comma-separated, each policy open-pow[:bits], admin-only or closed. Unset: open-pow at the default difficulty. A policy set with `aftersmtp ledger policy` wins.',
    parse: (raw) => parsePolicySpec(raw),
  }),
  ledgerBackend: setting({
    env: 'AFTERSMTP_LEDGER',
    default: 'sqlite',
    doc: 'Where the identity ledger is kept: sqlite (<data dir>/ledger.sqlite, one node) or postgres (the log shared by every node of the domain on AFTERSMTP_POSTGRES_URL; each node keeps a replica in <data dir>/ledger-replica.sqlite). See docs/OPERATIONS.md "Running several nodes".',
    parse: oneOf(['sqlite', 'postgres'] as const),
  }),
  ledgerFollowMs: setting({
    env: 'AFTERSMTP_LEDGER_FOLLOW_MS',
    default: '250',
    doc: 'With AFTERSMTP_LEDGER=postgres: how often a node reads the entries other nodes appended (ms); a registration on one node is visible on the others within it.',
    parse: integer(20, 60_000),
  }),
  ledgerRateLimit: setting({
    env: 'AFTERSMTP_LEDGER_RATE_LIMIT',
    default: '10/60',
    doc: 'Registration requests per client address: <burst>/<seconds to refill it>, e.g. 10/60.',
    parse: rateLimit,
  }),
  ledgerChallengeTtl: setting({
    env: 'AFTERSMTP_LEDGER_CHALLENGE_TTL',
    default: '600',
    doc: 'Seconds a registration challenge (and so its hashcash stamp) stays valid; spent stamps are remembered that long.',
    parse: integer(1, 86_400),
  }),
  clientTokenTtl: setting({
    env: 'AFTERSMTP_CLIENT_TOKEN_TTL',
    default: '900',
    doc: 'Seconds a client API token (from Authenticate, signed by the gateway key) stays valid.',
    parse: integer(1, 86_400),
  }),
  clientLoginRateLimit: setting({
    env: 'AFTERSMTP_CLIENT_LOGIN_RATE_LIMIT',
    default: '100/60',
    doc: 'Login calls (RequestChallenge, Authenticate) per client address: <burst>/<seconds to refill it>; over it, RESOURCE_EXHAUSTED with ERR_RATE_LIMITED before the request is read.',
    parse: rateLimit,
  }),
  mailboxPurgeInterval: setting({
    env: 'AFTERSMTP_MAILBOX_PURGE_INTERVAL',
    default: '300',
    doc: 'Seconds between purges of expired envelopes, tombstones, receipts and key shares (docs/EXPIRY.md) from the mailbox store.',
    parse: integer(1, 86_400),
  }),
  dnsServers: setting({
    env: 'AFTERSMTP_DNS_SERVERS',
    default: undefined,
    doc: 'DNS servers for discovery (_aftersmtp._tcp TXT), the SPF, DKIM, DMARC and ARC checks of legacy mail and the off-ramp (MX, addresses, TLSA, MTA-STS), comma-separated ip or ip:port ([v6]:port). Unset: the system resolvers.',
    parse: parseDnsServers,
  }),
  dnsCacheEntries: setting({
    env: 'AFTERSMTP_DNS_CACHE_ENTRIES',
    default: '10000',
    doc: 'DNS answers the gateway keeps in memory (LRU; also at most 16 MiB) in each of its two caches: the SMTP listener thread\'s, for the SPF, DKIM, DMARC and ARC checks of legacy mail, and the main thread\'s, for the off-ramp and the rest. Positive answers for their TTL (at most an hour), NXDOMAIN/NODATA for their SOA minimum (else 60 s; at most 15 minutes), failures not at all. 0: no cache, every question goes to AFTERSMTP_DNS_SERVERS. See docs/OPERATIONS.md, "DNS: one client and its caches".',
    parse: integer(0, 1_000_000),
  }),
  relayRoutes: setting({
    env: 'AFTERSMTP_RELAY_ROUTES',
    default: undefined,
    doc: 'Relay routes that win over DNS discovery: domain=quic-host:port[+quic-host:port...][/api-host:port] entries, comma-separated (several QUIC endpoints are the nodes of one gateway, used in turn with failover; the API endpoint defaults to the first QUIC host on port 4433); the log key still comes from DNS k= or the pin. See docs/PROTOCOL.md, Relay.',
    parse: parseRelayRoutes,
  }),
  relayCacheTtl: setting({
    env: 'AFTERSMTP_RELAY_CACHE_TTL',
    default: '300',
    doc: 'Seconds a verified remote identity record (and a DNS discovery answer) is reused before it is resolved again.',
    parse: integer(0, 86_400),
  }),
  relayCacheSize: setting({
    env: 'AFTERSMTP_RELAY_CACHE_SIZE',
    default: '10000',
    doc: 'Verified remote identity records kept in memory (LRU).',
    parse: integer(0, 10_000_000),
  }),
  queue: setting({
    env: 'AFTERSMTP_QUEUE',
    default: 'lmdb',
    doc: 'Delivery queue backend: lmdb (embedded, in <data dir>/queue), nats (JetStream) or rabbitmq (quorum queues). See docs/QUEUE.md.',
    parse: oneOf(['lmdb', 'nats', 'rabbitmq'] as const),
  }),
  substrateUrl: setting({
    env: 'AFTERSMTP_SUBSTRATE_URL',
    default: undefined,
    doc: "A Substrate node's WebSocket RPC (ws:// or wss://) on which the ledger's checkpoints are anchored (system.remarkWithEvent of the checkpoint commitment, PROTOCOL.md §9.9.1), with AFTERSMTP_ANCHOR_KEY_FILE. Unset: no anchoring.",
    parse: urlWithScheme(['ws:', 'wss:']),
  }),
  anchorKeyFile: setting({
    env: 'AFTERSMTP_ANCHOR_KEY_FILE',
    default: undefined,
    doc: 'File holding the secret of the account that signs and pays for anchors (a 0x-hex seed, a mnemonic or a secret URI; sr25519). A //dev URI is accepted only with AFTERSMTP_ANCHOR_DEV_MODE=yes.',
    parse: absolutePath,
  }),
  anchorDevMode: setting({
    env: 'AFTERSMTP_ANCHOR_DEV_MODE',
    default: 'no',
    doc: 'yes accepts a well-known dev account (//Alice...) as the anchoring key: for test chains only, never on a public chain.',
    parse: yesNo,
  }),
  anchorInterval: setting({
    env: 'AFTERSMTP_ANCHOR_INTERVAL',
    default: '3600',
    doc: 'Seconds: the current checkpoint is anchored at least this often while the ledger grows (and the latest anchor is checked on the chain this often).',
    parse: integer(1, 7 * 86_400),
  }),
  anchorEveryEntries: setting({
    env: 'AFTERSMTP_ANCHOR_EVERY_ENTRIES',
    default: '1000',
    doc: 'The current checkpoint is anchored as soon as this many ledger entries were added since the last anchor.',
    parse: integer(1, 1_000_000_000),
  }),
  witnesses: setting({
    env: 'AFTERSMTP_WITNESSES',
    default: undefined,
    doc: "The witnesses the ledger's checkpoints are sent to (C2SP tlog-witness add-checkpoint), as <witness verifier key>@<URL> entries separated by commas or spaces; their cosignatures are served with lookups. Each witness must know this log (its origin and `aftersmtp ledger key`). Unset: none.",
    parse: (raw) => parseWitnessList(raw),
  }),
  witnessInterval: setting({
    env: 'AFTERSMTP_WITNESS_INTERVAL',
    default: '300',
    doc: 'Seconds: the current checkpoint is sent to the witnesses at least this often while the ledger grows.',
    parse: integer(1, 7 * 86_400),
  }),
  witnessEveryEntries: setting({
    env: 'AFTERSMTP_WITNESS_EVERY_ENTRIES',
    default: '100',
    doc: 'The current checkpoint is sent to the witnesses as soon as this many ledger entries were added since the last one sent.',
    parse: integer(1, 1_000_000_000),
  }),
  witnessListen: setting({
    env: 'AFTERSMTP_WITNESS_LISTEN',
    default: 'off',
    doc: "Where this gateway serves as a C2SP tlog-witness for its peers' logs (HTTP POST /add-checkpoint; put TLS in front of it for the internet), host:port, or off. Its cosigning key is <data dir>/witness.seed (made on first use); the start-up log line shows its verifier key.",
    parse: listenOrOff,
  }),
  witnessLogs: setting({
    env: 'AFTERSMTP_WITNESS_LOGS',
    default: '',
    doc: "The peers' log verifier keys (their `aftersmtp ledger key`) this gateway witnesses, separated by commas or spaces; checkpoints of other logs are refused (403).",
    parse: (raw) =>
      raw
        .split(/[\s,]+/)
        .filter((k) => k.length > 0)
        .map((k) => {
          parseVerifierKey(k);
          return k;
        }),
  }),
  natsUrl: setting({
    env: 'AFTERSMTP_NATS_URL',
    default: 'nats://127.0.0.1:4222',
    doc: 'NATS server of the nats queue backend (JetStream enabled, sync_interval: always); for a cluster, several URLs separated by commas (the client connects to any and fails over to the others).',
    parse: urlList(['nats:', 'tls:']),
  }),
  natsReplicas: setting({
    env: 'AFTERSMTP_NATS_REPLICAS',
    default: '1',
    doc: "Replicas of the nats queue backend's streams (JetStream num_replicas): 1 on a single server, 3 on a cluster of three (a job survives the loss of one server). At most the cluster's size.",
    parse: integer(1, 5),
  }),
  amqpUrl: setting({
    env: 'AFTERSMTP_AMQP_URL',
    default: 'amqp://127.0.0.1:5672',
    doc: 'RabbitMQ server of the rabbitmq queue backend (amqp:// or amqps://, credentials in the URL).',
    parse: urlWithScheme(['amqp:', 'amqps:']),
  }),
  queueRetryBaseMs: setting({
    env: 'AFTERSMTP_QUEUE_RETRY_BASE_MS',
    default: '30000',
    doc: 'Retry backoff base in ms: after n failures a recipient waits a random time in [0, min(cap, base * 2^(n-1))] (full jitter).',
    parse: integer(1, 86_400_000),
  }),
  queueRetryCapMs: setting({
    env: 'AFTERSMTP_QUEUE_RETRY_CAP_MS',
    default: '3600000',
    doc: 'Retry backoff cap in ms (the largest jitter window).',
    parse: integer(1, 86_400_000),
  }),
  queueMaxAgeMs: setting({
    env: 'AFTERSMTP_QUEUE_MAX_AGE_MS',
    default: '432000000',
    doc: 'Maximum age of a queued recipient in ms (default 5 days); then it is dead-lettered and bounced.',
    parse: integer(1000, 90 * 86_400_000),
  }),
  queueLeaseMs: setting({
    env: 'AFTERSMTP_QUEUE_LEASE_MS',
    default: '300000',
    doc: 'How long a delivery worker holds a job before it is deliverable again (a hung worker), in ms. With the lmdb queue, the leases of a process that died come back when the queue next opens (docs/QUEUE.md).',
    parse: integer(1000, 86_400_000),
  }),
  deliveryConcurrency: setting({
    env: 'AFTERSMTP_DELIVERY_CONCURRENCY',
    default: '64',
    doc: 'Queued jobs the delivery worker works on at once, for every destination together (as Postfix default_process_limit); it holds at most four times as many leased jobs in hand, their bodies within AFTERSMTP_DELIVERY_MAX_HELD_BYTES.',
    parse: integer(1, 4096),
  }),
  deliveryPeerConcurrency: setting({
    env: 'AFTERSMTP_DELIVERY_PEER_CONCURRENCY',
    default: '32',
    doc: 'Of those, at most this many for one AMP peer gateway (they share one QUIC connection, a stream each), so that a slow or unreachable peer leaves the other slots to the rest; at most AFTERSMTP_DELIVERY_CONCURRENCY. See docs/QUEUE.md, "Delivery slots".',
    parse: integer(1, 4096),
  }),
  deliveryDestinationConcurrency: setting({
    env: 'AFTERSMTP_DELIVERY_DESTINATION_CONCURRENCY',
    default: '16',
    doc: 'At most this many for one off-ramp destination (a connection each; as Postfix default_destination_concurrency_limit); at most AFTERSMTP_DELIVERY_CONCURRENCY.',
    parse: integer(1, 4096),
  }),
  deliveryMaxHeldBytes: setting({
    env: 'AFTERSMTP_DELIVERY_MAX_HELD_BYTES',
    default: String(1024 * 1024 * 1024),
    doc: 'Bytes of queued bodies the delivery worker holds in memory at once (running and waiting jobs). A lease asks for no more jobs than would fit at AFTERSMTP_MAX_ENVELOPE_BYTES each, so the bound holds before the bodies are read; one job is always taken when none is in hand. See docs/QUEUE.md, "Delivery slots".',
    parse: integer(1, 2 ** 50),
  }),
  storageMinFreeBytes: setting({
    env: 'AFTERSMTP_STORAGE_MIN_FREE_BYTES',
    default: String(128 * 1024 * 1024),
    doc: 'Free space the file system of the embedded stores (LMDB queue and mailboxes) must keep: below it new mail is refused as a temporary failure (ERR_STORAGE_FULL) while deliveries and deletions go on (like Postfix queue_minfree). Never less than the floor, twice AFTERSMTP_MAX_ENVELOPE_BYTES plus 4 MiB, which 0 leaves in force (docs/OPERATIONS.md, Disk).',
    parse: integer(0, 2 ** 50),
  }),
  store: setting({
    env: 'AFTERSMTP_STORE',
    default: 'lmdb',
    doc: 'Mailbox store backend: lmdb (embedded, in <data dir>/mailboxes) or postgres (PostgreSQL with pgcrypto, AFTERSMTP_POSTGRES_URL). See docs/STORE.md.',
    parse: oneOf(['lmdb', 'postgres'] as const),
  }),
  postgresUrl: setting({
    env: 'AFTERSMTP_POSTGRES_URL',
    default: 'postgres://127.0.0.1:5432/aftersmtp',
    doc: 'PostgreSQL database of the postgres mailbox store, ledger and maps (postgres:// or postgresql://, credentials in the URL); migrations run on start.',
    parse: urlWithScheme(['postgres:', 'postgresql:']),
  }),
  storeKeyFile: setting({
    env: 'AFTERSMTP_STORE_KEY_FILE',
    default: undefined,
    doc: 'Keyring file for the mailbox store encryption at rest: one base64 32-byte key per line, the write key first. Unset: <data dir>/store.key, generated (mode 0600) on first start. A running gateway follows it: `aftersmtp store-key` rotates (docs/STORE.md).',
    parse: absolutePath,
  }),
  storeKey: setting({
    env: 'AFTERSMTP_STORE_KEY',
    default: undefined,
    doc: 'The mailbox store key(s) instead of the key file: base64 32-byte keys separated by commas, the write key first.',
    parse: (raw) => {
      if (!/^[A-Za-z0-9+/]{43}=(,[A-Za-z0-9+/]{43}=)*$/.test(raw)) {
        throw new Error('expected base64-encoded 32-byte keys separated by commas');
      }
      return raw;
    },
  }),
  mapsMaxEntries: setting({
    env: 'AFTERSMTP_MAPS_MAX_ENTRIES',
    default: '100000',
    doc: 'Entries allowed in each map of <data dir>/maps.sqlite (access_map, relay_domains, mx_record_map, canonical_maps, virtual_alias_maps); a set or import over it is refused. See docs/MAPS.md.',
    parse: integer(1, 10_000_000),
  }),
  mapsParentDomainMatches: setting({
    env: 'AFTERSMTP_MAPS_PARENT_DOMAIN_MATCHES',
    default: 'no',
    doc: 'access_map: yes makes a bare domain key (example.org) match its subdomains (Postfix parent_domain_matches_subdomains with smtpd_access_maps); no: only .example.org keys match subdomains.',
    parse: yesNo,
  }),
  mapsBackend: setting({
    env: 'AFTERSMTP_MAPS',
    default: 'sqlite',
    doc: 'Where the maps are kept: sqlite (<data dir>/maps.sqlite) or postgres (shared by every node on AFTERSMTP_POSTGRES_URL; `aftersmtp maps` writes there and each node follows within AFTERSMTP_MAPS_POLL_MS, keeping maps.sqlite as its cache). The MailScript scripts are kept with them. See docs/MAPS.md.',
    parse: oneOf(['sqlite', 'postgres'] as const),
  }),
  mapsPollMs: setting({
    env: 'AFTERSMTP_MAPS_POLL_MS',
    default: '250',
    doc: 'How often, in ms, a running gateway looks for map changes made by `aftersmtp maps` (another process); a change is live within this interval plus the rebuild.',
    parse: integer(50, 60_000),
  }),
  recipientDelimiter: setting({
    env: 'AFTERSMTP_RECIPIENT_DELIMITER',
    default: '+',
    doc: 'Characters that start an address extension (user+ext@domain) in map lookups, each one a delimiter (Postfix recipient_delimiter); empty turns extensions off.',
    parse: checkRecipientDelimiter,
  }),
  scriptTimeoutMs: setting({
    env: 'AFTERSMTP_SCRIPT_TIMEOUT_MS',
    default: '50',
    doc: 'CPU deadline of one MailScript run, in ms; a script that runs longer costs its message a temporary failure (docs/MAILSCRIPT.md).',
    parse: integer(1, 5_000),
  }),
  scriptMemoryMb: setting({
    env: 'AFTERSMTP_SCRIPT_MEMORY_MB',
    default: '64',
    doc: 'Memory of the MailScript sandbox (its WebAssembly instance, all warm scripts together), in MiB; a script that needs more fails with a temporary failure for its message.',
    parse: integer(16, 2_048),
  }),
  scriptPoolSize: setting({
    env: 'AFTERSMTP_SCRIPT_POOL_SIZE',
    default: '32',
    doc: 'Warm MailScript contexts kept (one per script version, least recently used dropped first).',
    parse: integer(1, 1_024),
  }),
  scriptPollMs: setting({
    env: 'AFTERSMTP_SCRIPT_POLL_MS',
    default: '250',
    doc: 'How often, in ms, a running gateway looks for scripts changed by `aftersmtp script` (another process; with AFTERSMTP_MAPS=postgres, on the server).',
    parse: integer(50, 60_000),
  }),
  scriptWebhooks: setting({
    env: 'AFTERSMTP_SCRIPT_WEBHOOKS',
    default: '',
    doc: 'The webhooks MailScript may call, as name=URL pairs separated by commas (http or https), e.g. slack=https://hooks.example/T1; a call to any other name fails the script.',
    parse: parseWebhookList,
  }),
  scriptWebhookTimeoutMs: setting({
    env: 'AFTERSMTP_SCRIPT_WEBHOOK_TIMEOUT_MS',
    default: '10000',
    doc: 'How long one webhook POST may take, in ms, before it counts as a temporary failure (retried with the queue backoff).',
    parse: integer(100, 120_000),
  }),
  rspamdUrl: setting({
    env: 'AFTERSMTP_RSPAMD_URL',
    default: undefined,
    doc: 'Rspamd normal worker for the spam policy (http://host:port, the /checkv2 protocol). Unset: a spam_policy entry that names rspamd finds it unavailable, and its unavailable= rule applies.',
    parse: urlWithScheme(['http:']),
  }),
  spamdUrl: setting({
    env: 'AFTERSMTP_SPAMD_URL',
    default: undefined,
    doc: "SpamAssassin's spamd for the spam policy (spamd://host:port). Unset: a spam_policy entry that names spamassassin finds it unavailable, and its unavailable= rule applies.",
    parse: urlWithScheme(['spamd:']),
  }),
  spamTimeoutMs: setting({
    env: 'AFTERSMTP_SPAM_TIMEOUT_MS',
    default: '10000',
    doc: 'How long a spam scan may take (ms) before the scanner counts as unavailable for that message (the SMTP client waits this long at most at the end of DATA).',
    parse: integer(100, 120_000),
  }),
  spamAmpMinSenderAge: setting({
    env: 'AFTERSMTP_SPAM_AMP_MIN_SENDER_AGE',
    default: '0',
    doc: "AMP mail from other gateways whose sender's key record is younger than this many seconds is filed in Junk; 0: off.",
    parse: integer(0, 10 * 365 * 86400),
  }),
  spamAmpMaxPerHour: setting({
    env: 'AFTERSMTP_SPAM_AMP_MAX_PER_HOUR',
    default: '0',
    doc: 'AMP mail from other gateways beyond this many envelopes per sender per hour (counted in this process) is filed in Junk; 0: off.',
    parse: integer(0, 100_000_000),
  }),
} as const;

/** A URL whose scheme is one of `schemes` (e.g. 'nats:'), as given. */
function urlWithScheme(schemes: readonly string[]) {
  return (raw: string): string => {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new Error(`expected a URL, got ${JSON.stringify(raw)}`);
    }
    if (!schemes.includes(url.protocol)) {
      throw new Error(`expected a ${schemes.join(' or ')}// URL, got ${JSON.stringify(raw)}`);
    }
    return raw;
  };
}

/** One URL or several separated by commas, each with one of `schemes`. */
function urlList(schemes: readonly string[]) {
  const one = urlWithScheme(schemes);
  return (raw: string): string => {
    const parts = raw.split(',').map((u) => u.trim());
    if (parts.some((u) => u.length === 0)) {
      throw new Error(`expected URLs separated by commas, got ${JSON.stringify(raw)}`);
    }
    return parts.map(one).join(',');
  };
}

type Settings = typeof SETTINGS;

/** The validated configuration: one typed field per setting (undefined where unset and no default). */
export type Config = {
  readonly [K in keyof Settings]: Settings[K] extends Setting<infer T, infer D>
    ? D extends string
      ? T
      : T | undefined
    : never;
};
