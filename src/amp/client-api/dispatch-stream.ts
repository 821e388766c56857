/**
 * The client side of DispatchStream (docs/PROTOCOL.md §12.3): many envelopes over one call, for
 * a sender with many to send. `dispatch` answers as `GatewayClient.dispatchMessage` would: the
 * queue's answer once the envelope is committed, or a ClientApiError with the refusal's code.
 * The gateway answers in the order of the requests, so the answers are matched to the requests
 * by position.
 *
 * Guarantees: every `dispatch` settles exactly once. When the call ends before a request is
 * answered (the gateway shut down, a refusal of the whole call such as ERR_CLIENT_API_BUSY, a
 * lost connection), that request rejects with the call's error, or ERR_DISPATCH_STREAM_ENDED:
 * it may or may not have been committed, and sending it again (on a new call, or with
 * DispatchMessage) is safe: the recipient's mailbox store keeps one copy of a message id. Not
 * guaranteed: any bound on what waits in memory here; the caller decides how many it sends
 * before their answers (the gateway reads DISPATCH_STREAM_WINDOW at a time).
 */
import { status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import type {
  DispatchMessageRequestMsg,
  DispatchMessageResponseMsg,
  DispatchRefusalMsg,
  DispatchStreamResponseMsg,
} from './messages.js';
import { ClientApiError } from './status.js';

type Call = ClientDuplexStream<DispatchMessageRequestMsg, DispatchStreamResponseMsg>;

interface Waiting {
  resolve(res: DispatchMessageResponseMsg): void;
  reject(err: Error): void;
}

/** One answer's refusal as the error DispatchMessage's status would have given. */
function refusalError(r: DispatchRefusalMsg): ClientApiError {
  return new ClientApiError(
    r.status,
    r.code,
    r.message,
    r.retry_after_ms > 0 ? r.retry_after_ms : undefined,
  );
}

function streamEnded(): ClientApiError {
  return new ClientApiError(
    status.UNAVAILABLE,
    'ERR_DISPATCH_STREAM_ENDED',
    'the gateway ended the stream before answering this request; send it again',
  );
}

export class DispatchStream {
  readonly #call: Call;
  readonly #waiting: Waiting[] = [];
  #error: Error | undefined;
  #ending = false;
  readonly #done: Promise<void>;

  constructor(call: Call) {
    this.#call = call;
    call.on('data', (res: DispatchStreamResponseMsg) => {
      const w = this.#waiting.shift();
      if (w === undefined) return;
      if (res.accepted !== null && res.accepted !== undefined) w.resolve(res.accepted);
      else if (res.refused !== null && res.refused !== undefined)
        w.reject(refusalError(res.refused));
      else w.reject(streamEnded());
    });
    this.#done = new Promise((resolve) => {
      call.on('error', (err: ServiceError) => {
        this.#fail(ClientApiError.fromStatus(err));
        resolve();
      });
      call.on('status', () => {
        this.#fail(streamEnded());
        resolve();
      });
    });
  }

  /** Sends one envelope; resolves with the gateway's answer once it is committed. */
  dispatch(req: DispatchMessageRequestMsg): Promise<DispatchMessageResponseMsg> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#ending) return Promise.reject(streamEnded());
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#call.write(req);
    });
  }

  /** Half-closes the call; resolves when the gateway has answered everything and ended it. */
  async end(): Promise<void> {
    if (this.#error === undefined && !this.#ending) this.#call.end();
    this.#ending = true;
    await this.#done;
  }

  /** Abandons the call: unanswered requests reject (they may still be committed). */
  cancel(): void {
    this.#call.cancel();
  }

  #fail(err: Error): void {
    this.#error ??= err;
    for (const w of this.#waiting.splice(0)) w.reject(this.#error);
  }
}
