// The wire codes and settings of the QUIC transport: the TypeScript constants equal the native
// core's, every code maps to its typed error, and the cross-variable configuration checks hold.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { quicCodes } from '../../src/native/index.js';
import { ConfigError } from '../../src/errors.js';
import { QUIC_CODES, QuicError, QuicRefusal, quicLimitsFromConfig } from '../../src/quic/index.js';
import { loadConfig } from '../../src/config/load.js';

describe('QUIC codes and settings', () => {
  it('matches the native core code for code', () => {
    assert.deepEqual({ ...quicCodes() }, { ...QUIC_CODES });
  });

  it('maps every code to a typed error', () => {
    assert.equal(new QuicError(QUIC_CODES.busy, 'x').code, 'ERR_QUIC_BUSY');
    assert.equal(new QuicError(QUIC_CODES.busy, 'x').temporary, true);
    assert.equal(new QuicError(QUIC_CODES.tooLarge, 'x').code, 'ERR_QUIC_TOO_LARGE');
    assert.equal(new QuicError(QUIC_CODES.tooLarge, 'x').temporary, false);
    assert.equal(new QuicError(QUIC_CODES.peerRejected, 'x').code, 'ERR_QUIC_PEER_REJECTED');
    assert.equal(new QuicError(0x1234, 'x').code, 'ERR_QUIC_APPLICATION');
    assert.throws(() => new QuicRefusal('x', 0x0100), RangeError);
    assert.throws(() => new QuicRefusal('x', 0x10000), RangeError);
    assert.equal(new QuicRefusal('x', QUIC_CODES.busy).wireCode, 1);
  });

  it('reads the caps from AFTERSMTP_QUIC_* and refuses inconsistent ones', () => {
    const config = loadConfig({
      AFTERSMTP_QUIC_MAX_FRAME_BYTES: '1048576',
      AFTERSMTP_QUIC_STREAM_TIMEOUT_MS: '2500',
    });
    const limits = quicLimitsFromConfig(config);
    assert.equal(limits.maxFrameBytes, 1048576);
    assert.equal(limits.streamTimeoutMs, 2500);
    assert.equal(limits.maxConnections, 1024);
    assert.equal(config.quicListen.port, 4434);
    assert.throws(
      () =>
        quicLimitsFromConfig(
          loadConfig({
            AFTERSMTP_QUIC_MAX_FRAME_BYTES: String(64 * 1024 * 1024),
            AFTERSMTP_QUIC_CONNECTION_WINDOW_BYTES: String(64 * 1024 * 1024),
          }),
        ),
      ConfigError,
    );
    assert.throws(() => loadConfig({ AFTERSMTP_QUIC_MAX_CONNECTIONS: '0' }), ConfigError);
  });
});
