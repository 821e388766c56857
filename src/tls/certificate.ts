/**
 * The gateway's TLS certificate, shared by every TLS listener (the gRPC client API today, the
 * QUIC relay next): a self-signed ECDSA P-256 certificate generated on first start into the data
 * directory with @peculiar/x509 over node's WebCrypto, then loaded on every later start. Clients
 * do not use a CA: they pin the certificate's SubjectPublicKeyInfo (SHA-256, `sha256/<base64>`,
 * the RFC 7469 pin form), which is also what the gateway's ledger record carries (quic-tls-spki).
 *
 * Guarantees:
 * - The private key is never written in the clear when a passphrase is given (PKCS#8
 *   EncryptedPrivateKeyInfo, AES-256-CBC under PBKDF2, written with mode 0600); the returned PEM
 *   is decrypted in memory only.
 * - A certificate and key that do not belong together, or that fail to parse, are refused with
 *   ERR_TLS_CERT; nothing is regenerated over an existing file (the pin would change silently).
 * - Files are created exclusively (`wx`), so two processes starting at once cannot mix halves.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  webcrypto,
  X509Certificate,
} from 'node:crypto';
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
// @peculiar/x509 resolves its ASN.1 codecs with tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { InputError } from '../errors.js';

export const TLS_CERT_FILE = 'tls.crt';
export const TLS_KEY_FILE = 'tls.key';
/** Long-lived on purpose: the certificate is pinned, not validated against a CA's clock policy. */
export const CERT_VALIDITY_DAYS = 3650;
const MAX_PEM_BYTES = 64 * 1024;

export interface TlsMaterial {
  /** PEM certificate (what a client may pin with --gateway-cert). */
  readonly certPem: string;
  /** PEM PKCS#8 private key, decrypted, in memory only. */
  readonly keyPem: string;
  /** DER SubjectPublicKeyInfo of the certificate's key. */
  readonly spki: Buffer;
  /** `sha256/<base64 SHA-256(spki)>`: the pin clients use (--gateway-spki). */
  readonly spkiPin: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly created: boolean;
}

export interface CertificateOptions {
  readonly dir: string;
  /** Subject common name, e.g. the gateway DID's domain. */
  readonly commonName: string;
  /** DNS names for the subjectAltName (IP addresses go to `ips`). */
  readonly dnsNames?: readonly string[];
  readonly ips?: readonly string[];
  /** Encrypts the key file at rest; without it the key file is plain PKCS#8 (mode 0600). */
  readonly passphrase?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly clock?: () => number;
}

/** `sha256/<base64>` of a DER SubjectPublicKeyInfo. */
export function spkiPin(spki: Buffer): string {
  return `sha256/${createHash('sha256').update(spki).digest('base64')}`;
}

/** The DER SubjectPublicKeyInfo of a PEM or DER certificate. */
export function certificateSpki(cert: string | Buffer): Buffer {
  try {
    const c = new X509Certificate(cert);
    return c.publicKey.export({ type: 'spki', format: 'der' });
  } catch (err) {
    throw new InputError('ERR_TLS_CERT', `not a certificate: ${(err as Error).message}`);
  }
}

/** Parses `sha256/<base64 of 32 bytes>`; anything else is ERR_TLS_PIN. */
export function parseSpkiPin(pin: string): string {
  const m = /^sha256\/([A-Za-z0-9+/]{43}=)$/.exec(pin);
  if (m === null || Buffer.from(m[1] as string, 'base64').length !== 32) {
    throw new InputError('ERR_TLS_PIN', 'a gateway pin is sha256/<base64 of 32 bytes>');
  }
  return pin;
}

export interface SelfSignedOptions {
  /** Subject common name, e.g. the gateway DID's domain (default `aftersmtp-gateway`). */
  readonly commonName?: string;
  /** DNS names for the subjectAltName. */
  readonly dnsNames?: readonly string[];
  /** IP addresses for the subjectAltName. */
  readonly ips?: readonly string[];
  readonly clock?: () => number;
}

/** A certificate and its key, in memory. */
export interface CertificateAndKey {
  readonly certPem: string;
  /** PEM PKCS#8 private key. */
  readonly keyPem: string;
  /** DER SubjectPublicKeyInfo of the certificate's key. */
  readonly spki: Buffer;
  /** `sha256/<base64 SHA-256(spki)>`. */
  readonly spkiPin: string;
}

/**
 * The one certificate generator: a self-signed ECDSA P-256 certificate valid for
 * CERT_VALIDITY_DAYS, for both TLS roles (serverAuth for the gRPC listener and the QUIC server,
 * clientAuth for QUIC's mutual authentication between gateways). Peers authenticate it by
 * pinning its SubjectPublicKeyInfo (from the gateway's DID record), never through a CA.
 */
export async function generateSelfSignedCertificate(
  opts: SelfSignedOptions = {},
): Promise<CertificateAndKey> {
  const crypto = webcrypto;
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await crypto.subtle.generateKey(alg, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const now = opts.clock?.() ?? Date.now();
  const names: x509.JsonGeneralName[] = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: Buffer.from(crypto.getRandomValues(new Uint8Array(16)))
        .toString('hex')
        .replace(/^[89a-f]/, '1'),
      name: [{ CN: [(opts.commonName ?? 'aftersmtp-gateway').slice(0, 64)] }],
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + CERT_VALIDITY_DAYS * 86_400_000),
      signingAlgorithm: alg,
      keys: keys as never,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      ],
    },
    crypto as never,
  );
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
    .export({ type: 'pkcs8', format: 'pem' })
    .toString();
  const certPem = cert.toString('pem');
  const spki = certificateSpki(certPem);
  return { certPem, keyPem, spki, spkiPin: spkiPin(spki) };
}

async function readPem(path: string): Promise<string | undefined> {
  try {
    const bytes = await readFile(path);
    if (bytes.length > MAX_PEM_BYTES) {
      throw new InputError('ERR_TLS_CERT', `${path} is larger than ${MAX_PEM_BYTES} bytes`);
    }
    return bytes.toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Checks that the key opens and belongs to the certificate; returns the clear PEM and SPKI. */
function checkPair(
  certPem: string,
  storedKey: string,
  passphrase: string | undefined,
  where: string,
): { keyPem: string; spki: Buffer } {
  let keyPem: string;
  try {
    const key = createPrivateKey(
      passphrase === undefined ? storedKey : { key: storedKey, passphrase },
    );
    keyPem = key.export({ type: 'pkcs8', format: 'pem' }).toString();
    const fromKey = createPublicKey(key).export({ type: 'spki', format: 'der' });
    const spki = certificateSpki(certPem);
    if (!fromKey.equals(spki)) throw new Error('the key does not match the certificate');
    return { keyPem, spki };
  } catch (err) {
    throw new InputError(
      'ERR_TLS_CERT',
      `${where}: ${err instanceof InputError ? err.message : (err as Error).message.split('\n')[0]}`,
    );
  }
}

/** Loads the data directory's certificate and key, generating them on first start. */
export async function loadOrCreateCertificate(opts: CertificateOptions): Promise<TlsMaterial> {
  const certFile = opts.certFile ?? join(opts.dir, TLS_CERT_FILE);
  const keyFile = opts.keyFile ?? join(opts.dir, TLS_KEY_FILE);
  const [certPem, storedKey] = await Promise.all([readPem(certFile), readPem(keyFile)]);
  if (certPem !== undefined && storedKey !== undefined) {
    const { keyPem, spki } = checkPair(certPem, storedKey, opts.passphrase, certFile);
    return { certPem, keyPem, spki, spkiPin: spkiPin(spki), certFile, keyFile, created: false };
  }
  if (certPem !== undefined || storedKey !== undefined) {
    throw new InputError(
      'ERR_TLS_CERT',
      `only one of ${certFile} and ${keyFile} exists; restore the other or remove both`,
    );
  }
  await mkdir(opts.dir, { recursive: true, mode: 0o700 });
  const made = await generateSelfSignedCertificate(opts);
  const atRest =
    opts.passphrase === undefined
      ? made.keyPem
      : createPrivateKey(made.keyPem)
          .export({
            type: 'pkcs8',
            format: 'pem',
            cipher: 'aes-256-cbc',
            passphrase: opts.passphrase,
          })
          .toString();
  await writeFile(keyFile, atRest, { mode: 0o600, flag: 'wx' });
  try {
    await writeFile(certFile, made.certPem, { mode: 0o644, flag: 'wx' });
  } catch (err) {
    await unlink(keyFile).catch(() => undefined);
    throw err;
  }
  const spki = certificateSpki(made.certPem);
  return {
    certPem: made.certPem,
    keyPem: made.keyPem,
    spki,
    spkiPin: spkiPin(spki),
    certFile,
    keyFile,
    created: true,
  };
}
