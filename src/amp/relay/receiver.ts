/**
 * The inbound side of the relay (docs/PROTOCOL.md §13.3): the QUIC `onMessage` handler. An
 * entrance in the sense of DESIGN.md §1b: it decodes the envelope another gateway delivers
 * (within bounds: ERR_RELAY_TOO_LARGE, ERR_RELAY_ENVELOPE_FORMAT), hands it to the pipeline with
 * the connection's certificate key, and turns the outcome into the answer: an ACK with one result
 * per recipient (a receipt signed by our gateway, or a refusal with a relay code), or a QUIC
 * ERROR when the envelope or every recipient is refused. What the pipeline checks for a relayed
 * envelope (its expiry, the sending gateway's signature and certificate, each recipient) is in
 * src/pipeline/admission.ts and addressing.ts; the mailbox commit, in src/pipeline/commit.ts.
 *
 * Guarantees: an ACK is sent only after the pipeline resolved, i.e. after every receipt in it is
 * durable with its envelope; a refusal carries a RELAY_REFUSALS code and a short reason with no
 * internal text; an unexpected failure propagates and the transport answers INTERNAL with a
 * transaction id.
 */
import { randomHex } from '../../random.js';
import { AfterSmtpError } from '../../errors.js';
import { decodeEnvelope, type Envelope } from '../../envelope/codec.js';
import { DEFAULT_MAX_ENVELOPE_BYTES } from '../../envelope/limits.js';
import type { AmpSubmission, Outcome, Refusal } from '../../pipeline/types.js';
import { QuicRefusal } from '../../quic/errors.js';
import type { InboundMessage, QuicPeerInfo } from '../../quic/transport.js';
import { encodeRelayAck, type RelayResult } from './ack.js';
import { RELAY_REFUSALS, relayRefusalFor, type RelayRefusalCode } from './errors.js';

export interface RelayLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface RelayReceiverOptions {
  /** The pipeline (src/pipeline/pipeline.ts): the one way in. */
  readonly pipeline: { submitAmp(sub: AmpSubmission): Promise<Outcome> };
  readonly maxEnvelopeBytes?: number;
  readonly now?: () => number;
}

function refuse(code: RelayRefusalCode, reason: string): QuicRefusal {
  return new QuicRefusal(reason.slice(0, 512), RELAY_REFUSALS[code].wire);
}

function refusalOf(r: Refusal): QuicRefusal {
  return refuse(relayRefusalFor(r), r.text);
}

export class RelayReceiver {
  readonly #o: RelayReceiverOptions;
  readonly #max: number;
  readonly #now: () => number;

  constructor(opts: RelayReceiverOptions) {
    this.#o = opts;
    this.#max = opts.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * For QuicTransport's `verifyInboundPeer`: any gateway in the world may connect, so the
   * connection is accepted when its certificate has a key; each MESSAGE is then bound to the
   * sending gateway's record by the pipeline's admission.
   */
  readonly verifyPeer = (peer: QuicPeerInfo): boolean => peer.spki.length > 0;

  /** For QuicTransport's `onMessage`. */
  readonly handle = async (msg: InboundMessage): Promise<Buffer> => {
    const data = msg.data;
    if (data.length > this.#max) {
      throw refuse(
        'ERR_RELAY_TOO_LARGE',
        `${data.length} bytes is over the ${this.#max}-byte limit`,
      );
    }
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(data, { maxBytes: this.#max });
    } catch (err) {
      const code = (err as AfterSmtpError).code;
      if (code === 'ERR_ENVELOPE_TOO_LARGE')
        throw refuse('ERR_RELAY_TOO_LARGE', 'envelope too large');
      throw refuse('ERR_RELAY_ENVELOPE_FORMAT', `malformed envelope (${String(code)})`);
    }
    const outcome = await this.#o.pipeline.submitAmp({
      transaction: randomHex(8),
      client: {
        entrance: 'relay',
        address: msg.peer.address,
        port: msg.peer.port,
        tls: true,
        spki: msg.peer.spki,
      },
      envelope,
      bytes: data,
      receivedAt: this.#now(),
    });
    if (outcome.kind === 'refused') throw refusalOf(outcome.refusal);
    const results: RelayResult[] = outcome.recipients.map((r) =>
      r.receipt !== undefined
        ? { kind: 'delivered', receipt: r.receipt }
        : {
            kind: 'refused',
            recipient: r.recipient,
            wireCode: RELAY_REFUSALS[relayRefusalFor(r.refusal as Refusal)].wire,
            reason: (r.refusal as Refusal).text,
          },
    );
    return encodeRelayAck(results);
  };
}
