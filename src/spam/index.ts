/**
 * Spam scanners (docs/OPERATIONS.md, "Spam policy"): clients of Rspamd (HTTP /checkv2) and
 * SpamAssassin (spamd), their common contract and their metrics. Mechanisms only: the pipeline's
 * spam check (src/pipeline/spam.ts) decides what a score means for each recipient.
 */
export { RspamdClient, parseRspamdReply, type RspamdOptions } from './rspamd.js';
export { SpamdClient, parseSpamdReply, parseSpamdUrl, type SpamdOptions } from './spamd.js';
export {
  NO_SPAM_METRICS,
  registerSpamMetrics,
  type SpamMetrics,
  type SpamVerdictName,
} from './metrics.js';
export {
  ScannerError,
  type ScanRequest,
  type ScanResult,
  type ScannerFailure,
  type SpamScanner,
  type SpamScannerName,
} from './types.js';
