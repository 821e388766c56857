/**
 * The pipeline's directory of remote identities (src/pipeline/recipients.ts RemoteDirectory),
 * answered by the relay's verified resolver: DIDs and gateway records of other domains, each
 * verified against that domain's pinned log, as values. Failures are classified once, in
 * errors.ts (classify): temporary (DNS, transport) or permanent (no such domain, a changed log
 * key, a bad proof).
 */
import type {
  RemoteDirectory,
  RemoteGatewayLookup,
  RemoteLookup,
} from '../../pipeline/recipients.js';
import { classify } from './errors.js';
import { gatewayDid, type RemoteIdentityResolver } from './identities.js';

export function remoteDirectory(identities: RemoteIdentityResolver): RemoteDirectory {
  return {
    async lookup(did): Promise<RemoteLookup> {
      try {
        const r = await identities.resolve(did);
        if (r.revoked || r.record === undefined) return { state: 'revoked' };
        return { state: 'current', record: r.record };
      } catch (err) {
        const c = classify(err);
        if (c.code === 'ERR_DID_UNKNOWN') return { state: 'unknown' };
        return { state: 'failed', code: c.code, temporary: c.temporary, text: c.reason };
      }
    },
    async gateway(domain, fresh = false): Promise<RemoteGatewayLookup> {
      if (fresh) identities.forget(gatewayDid(domain));
      try {
        const gw = await identities.gateway(domain);
        return { state: 'found', did: gw.did, record: gw.record, tlsSpki: gw.tlsSpki };
      } catch (err) {
        const c = classify(err);
        return { state: 'failed', code: c.code, temporary: c.temporary, text: c.reason };
      }
    },
  };
}
