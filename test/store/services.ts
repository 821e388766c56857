// Where the postgres tests find the real server (scripts/services/postgres.sh, .ci/run). Locally
// a missing server skips them with the command that starts it; under CI (CI=true) it fails them:
// CI must never pass without the real server.
import pg from 'pg';

export interface PostgresService {
  readonly url: string;
  /** Why the tests are skipped; undefined when the server answers. */
  readonly skip: string | undefined;
}

export const DEFAULT_POSTGRES_URL = 'postgres://aftersmtp:aftersmtp-test@127.0.0.1:5432/aftersmtp';

export async function postgresService(): Promise<PostgresService> {
  const url = process.env.AFTERSMTP_POSTGRES_URL ?? DEFAULT_POSTGRES_URL;
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return { url, skip: undefined };
  } catch (err) {
    const why =
      `no PostgreSQL at AFTERSMTP_POSTGRES_URL (${(err as Error).message}); start one with: ` +
      'bash scripts/services/postgres.sh start && export AFTERSMTP_POSTGRES_URL="$(bash scripts/services/postgres.sh url)"';
    if (process.env.CI === 'true') throw new Error(`under CI the real server is required: ${why}`);
    return { url, skip: why };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A fresh database for one test (the role has CREATEDB), dropped by the returned function. */
export async function freshDatabase(
  url: string,
): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `aftersmtp_t_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(url);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        // An autovacuum worker on the database is a backend the role may not terminate (42501,
        // "must be a member of the role whose process is being terminated"); it ends in moments.
        for (let attempt = 1; ; attempt++) {
          try {
            await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
            return;
          } catch (err) {
            if ((err as { code?: string }).code !== '42501' || attempt === 10) throw err;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      } finally {
        await c.end();
      }
    },
  };
}
