/**
 * The pipeline's values (DESIGN.md §1b): what an entrance hands in (a submission, and for SMTP
 * the client, sender and recipients as the dialogue goes), what a stage answers (a verdict),
 * and what comes out (an outcome). Entrances build these from wire input; stages never see a
 * socket, a gRPC call or a QUIC stream, and never touch the queue or the store.
 */
import type { PublicKeyRecord } from '../identity/keys.js';
import type { Envelope } from '../envelope/codec.js';
import type { DeliveryReceipt } from '../envelope/receipt.js';
import type { ArcChainState } from '../mail/arc.js';

/** Where a message came in. */
export type Entrance =
  /** SMTP port 25: mail from the internet for the domains this gateway serves. */
  | 'smtp'
  /** SMTP ports 587 and 465: submission by an authenticated user. */
  | 'submission'
  /** gRPC DispatchMessage: an AMP client of this gateway. */
  | 'client-api'
  /** QUIC DeliverMessage: another AMP gateway. */
  | 'relay';

/** The party on the other end, as its entrance saw and authenticated it. */
export interface Client {
  readonly entrance: Entrance;
  /** IP address (IPv4-mapped IPv6 given as IPv4). */
  readonly address: string;
  readonly port: number;
  /** SMTP: the EHLO/HELO name. */
  readonly helo?: string;
  readonly tls: boolean;
  /** The DID the entrance authenticated: a client API token's, or a submission login's. */
  readonly did?: string;
  /** SMTP AUTH: the login name. */
  readonly login?: string;
  /** Relay: DER SubjectPublicKeyInfo of the sending gateway's QUIC certificate. */
  readonly spki?: Buffer;
}

/**
 * A refusal: a stable code (each edge maps it to its own reply), whether trying again later may
 * succeed, and a one-line text that is safe to show to the party refused.
 */
export interface Refusal {
  readonly code: string;
  readonly temporary: boolean;
  readonly text: string;
  /** An SMTP reply code an operator chose (an access_map entry such as `550 text`). */
  readonly smtpCode?: number;
}

/** A MailScript webhook call: queued as an entry of its own once the message is committed. */
export interface WebhookCall {
  /** The name the administrator allowed (AFTERSMTP_SCRIPT_WEBHOOKS). */
  readonly name: string;
  /** Its URL, as allowed when the script ran. */
  readonly url: string;
  /** The JSON text to POST. */
  readonly payload: string;
}

/**
 * What admission and the policy stage may ask of the rest of the message (Postfix access-map
 * actions, MailScript actions).
 */
export interface Effects {
  /** Accept and deliver nothing (DISCARD), with the reason for the log. */
  readonly discard?: string;
  /** Commit the message held until an operator releases it (HOLD), with the reason. */
  readonly hold?: string;
  /** Header lines to put in front of the message (PREPEND); legacy mail only. */
  readonly headers?: readonly string[];
  /**
   * Recipients whose copy is filed in their Junk folder: the RCPT TO address for legacy mail (as
   * in `RecipientPlan.address`), the DID for AMP. Filing is the mailbox side's.
   */
  readonly junk?: readonly string[];
  /** MailScript redirect(): the one recipient (address or DID) that replaces all of them. */
  readonly redirect?: string;
  /** MailScript route_via(): an `smtp:` route (mx_record_map syntax) for the off-ramp copies. */
  readonly route?: string;
  /** MailScript webhook(): calls queued after the message is committed. */
  readonly webhooks?: readonly WebhookCall[];
  /**
   * Recipients refused by policy after DATA (spam, MailScript), named as in `junk`. Their copies
   * are not delivered; the message is refused only when no recipient is left. A temporary refusal
   * of any recipient refuses the whole message temporarily (nothing is delivered, the client sends
   * again), because SMTP after DATA has one answer for all recipients and a copy must not be lost.
   */
  readonly refusedRecipients?: readonly {
    readonly recipient: string;
    readonly refusal: Refusal;
  }[];
  /** What the spam scanners said (src/pipeline/spam.ts). */
  readonly spam?: SpamReport;
}

// ---- the spam policy's report (src/pipeline/spam.ts) ----

/** One scanner's answer for a message, or why it gave none. */
export interface SpamScanReport {
  readonly scanner: string;
  /** 'ok', or the ScannerError reason (timeout, connect, protocol, too-large, refused). */
  readonly result: string;
  readonly score?: number;
  readonly symbols: readonly string[];
}

export type RecipientSpamVerdict = 'ham' | 'junk' | 'reject' | 'unavailable' | 'tempfail';

export interface RecipientSpam {
  readonly recipient: string;
  readonly verdict: RecipientSpamVerdict;
  /** The highest score among the recipient's scanners that answered. */
  readonly score?: number;
  readonly junk?: number;
  readonly reject?: number;
  readonly scanners: readonly string[];
}

/** What the spam check found (Effects.spam): every scan, and each scanned recipient's verdict. */
export interface SpamReport {
  readonly scans: readonly SpamScanReport[];
  readonly recipients: readonly RecipientSpam[];
  readonly scannedAt: number;
}

/** A stage's answer about a message, a sender or one recipient. */
export type Verdict =
  | { readonly kind: 'continue'; readonly effects?: Effects }
  | { readonly kind: 'refuse'; readonly refusal: Refusal };

export const CONTINUE: Verdict = { kind: 'continue' };

/** Where one recipient's copy goes, as addressing resolved it. */
export type Target =
  /** An AMP identity: sealed (legacy mail) or relayed (AMP mail) to its current key. */
  | {
      readonly kind: 'did';
      readonly did: string;
      readonly record: PublicKeyRecord;
      /** A DID of this gateway's domain (the mailbox is here). */
      readonly local: boolean;
    }
  /** An ordinary address outside AMP: the off-ramp delivers it over SMTP. */
  | { readonly kind: 'address'; readonly address: string; readonly destination: string };

/** An SMTP recipient as accepted at RCPT TO: the address given and what it resolved to. */
export interface RecipientPlan {
  readonly address: string;
  readonly targets: readonly Target[];
}

/** What the authentication check (src/pipeline/authentication.ts) found of a legacy message. */
export interface AuthResults {
  /** Header lines (CRLF-terminated) to put in front of the message. */
  readonly headers: string;
  /** The Authentication-Results value (after `Authentication-Results: `). */
  readonly authenticationResults: string;
  readonly spf: string;
  readonly dkim: string;
  readonly dmarc: string;
  readonly arc: string;
  /** The ARC chain as a forwarding seal must state it; absent: the chain must not be sealed. */
  readonly arcChain?: ArcChainState;
  /** The last ARC set of a chain that passed (absent otherwise): who sealed it and what it saw. */
  readonly arcSeal?: ArcSeal;
  /** The From domain's DMARC record, when it has one: the policy that applies (p, or sp for a
   * subdomain) and pct. */
  readonly dmarcPolicy?: DmarcPolicy;
}

export interface ArcSeal {
  /** The domain of the last ARC-Seal (its d=), lower case. */
  readonly sealer: string;
  /** The DMARC result that set's ARC-Authentication-Results recorded ('none': it recorded none). */
  readonly dmarc: string;
}

export interface DmarcPolicy {
  /** The domain whose record applies (the organisational domain for a subdomain). */
  readonly domain: string;
  readonly policy: string;
  /** The percentage of failing mail the policy is for (RFC 7489 §6.3; default 100). */
  readonly pct: number;
}

/** A legacy message after DATA: everything the SMTP dialogue established, and the bytes. */
export interface LegacySubmission {
  readonly transaction: string;
  readonly client: Client;
  /** RFC 5321 reverse path; '' is the null sender. */
  readonly mailFrom: string;
  /** The recipients accepted at RCPT TO. */
  readonly recipients: readonly RecipientPlan[];
  /** access_map said OK for the client's address (port 25): an internal system of ours. */
  readonly trusted: boolean;
  /** What admission asked for along the dialogue. */
  readonly effects: Effects;
  /** The message as received (dot-unstuffed, CRLF line ends). */
  readonly message: Buffer;
  readonly receivedAt: number;
  /**
   * The authentication check's results when the entrance ran it already (the SMTP listener
   * thread runs the same check, off the main thread); unset: the pipeline runs it.
   */
  readonly auth?: AuthResults;
}

/** An AMP envelope from a client of this gateway or from another gateway. */
export interface AmpSubmission {
  readonly transaction: string;
  readonly client: Client;
  /** Decoded within bounds by the entrance. */
  readonly envelope: Envelope;
  /** The bytes it was decoded from. */
  readonly bytes: Uint8Array;
  readonly receivedAt: number;
  /** The client API's key share of an ephemeral envelope (PROTOCOL.md §6.10). */
  readonly keyShare?: Buffer;
}

export interface RecipientResult {
  readonly recipient: string;
  /** Set when the recipient was refused. */
  readonly refusal?: Refusal;
  /** Relay entrance: the receipt of the mailbox commit. */
  readonly receipt?: DeliveryReceipt;
}

/** What the pipeline did with a submission. */
export type Outcome =
  | {
      readonly kind: 'accepted';
      /** The AMP message id (hex) that follows the message to every delivery outcome. */
      readonly messageId: string;
      readonly recipients: readonly RecipientResult[];
      /** Queue entries committed (none when the message was discarded or went to mailboxes). */
      readonly entries: readonly string[];
      /** Set when admission asked for the message to be discarded. */
      readonly discarded?: string;
    }
  | { readonly kind: 'refused'; readonly refusal: Refusal };
