/**
 * The one way the code reads an AFTERSMTP_* variable outside the validated Config: an empty (or
 * blank) value means unset, everywhere, so that `AFTERSMTP_X= aftersmtp ...` and a systemd
 * `Environment=AFTERSMTP_X=` line switch a setting back to its default instead of failing.
 */

/** The value of `name`, or undefined when it is unset, empty or only blanks. */
export function envValue(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v;
}
