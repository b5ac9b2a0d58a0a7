// Emmett 0.42's side of bench/peer.py: one PostgreSQL event store, driven by bench/peer.py one
// JSON command a line on stdin, each answered by one JSON line on stdout, so that the Python
// side can interleave its own measurements with these on a loaded machine.
//
// {"op": "open", "connectionString": "postgresql://...", "batchSize": 1000}
//     durability settings as this store's connections see them;
// {"op": "seed", "path": "/path/events.jsonl"}  (untimed)
//     every line ({"stream", "type", "data"}: the Python store's own events, in log order) is
//     appended, each stream's events in one append, one stream at a time;
// {"op": "read"}
//     every event from the start, in batches of `batchSize`, through readMessagesBatch (what
//     Emmett's consumers and projections pull with), without the consumers' sleeps between
//     batches; also how many rows the table holds;
// {"op": "append", "appenders": 8, "events": 2000, "event": {"type": ..., "data": ...}}
//     that many concurrent appenders append `event`, one event per append, each to a different
//     seeded stream at its expected version, `events` in all; no stream is appended to twice in
//     one measurement;
// {"op": "close"}
import { dumbo, rawSql } from '@event-driven-io/dumbo';
import {
  getPostgreSQLEventStore,
  readMessagesBatch,
} from '@event-driven-io/emmett-postgresql';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

const setting = async (pool, name) =>
  (await pool.execute.query(rawSql(`SHOW ${name}`))).rows[0][name];

const seed = async (store, path) => {
  const streams = new Map();
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line) continue;
    const { stream, type, data } = JSON.parse(line);
    if (!streams.has(stream)) streams.set(stream, []);
    streams.get(stream).push({ type, data });
  }
  // One append at a time: with concurrent appends, a reader's batch boundary can skip events
  // (readMessagesBatch orders by transaction id, then resumes after the last global position;
  // concurrent transactions take global positions out of that order; see bench/peer.py).
  const versions = new Map();
  for (const [name, events] of streams) {
    const result = await store.appendToStream(name, events);
    versions.set(name, result.nextExpectedStreamVersion);
  }
  return versions;
};

// Emmett's readers see only transactions older than every transaction still in progress on the
// server (so that a reader never passes a gap); other work on the server can hold that back for
// a moment, so the read starts once all seeded events are visible.
const settled = async (pool) => {
  for (;;) {
    const { rows } = await pool.execute.query(
      rawSql(
        `SELECT count(*) FILTER (WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot()))
           AS pending FROM emt_messages`,
      ),
    );
    if (Number(rows[0].pending) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

const readAll = async (pool, batchSize) => {
  await settled(pool);
  let after = 0n;
  let count = 0;
  const started = performance.now();
  for (;;) {
    const batch = await readMessagesBatch(pool.execute, { after, batchSize });
    count += batch.messages.length;
    after = batch.currentGlobalPosition;
    if (batch.messages.length === 0 || !batch.areMessagesLeft) break;
  }
  const seconds = (performance.now() - started) / 1000;
  return { events: count, seconds, rate: count / seconds };
};

const append = async (store, versions, event, appenders, events) => {
  const names = [...versions.keys()];
  if (events > names.length) throw new Error(`${events} appends, only ${names.length} streams`);
  const mine = Array.from({ length: appenders }, (_, i) =>
    names.slice(0, events).filter((_, n) => n % appenders === i),
  );
  const started = performance.now();
  await Promise.all(
    mine.map(async (streams) => {
      for (const name of streams) {
        const result = await store.appendToStream(name, [event], {
          expectedStreamVersion: versions.get(name),
        });
        versions.set(name, result.nextExpectedStreamVersion);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { appenders, events, seconds, rate: events / seconds };
};

const main = async () => {
  let pool;
  let store;
  let versions;
  let batchSize;
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  const answer = (value) => process.stdout.write(JSON.stringify(value) + '\n');
  try {
    for await (const line of lines) {
      const command = JSON.parse(line);
      if (command.op === 'open') {
        batchSize = command.batchSize;
        pool = dumbo({ connectionString: command.connectionString });
        store = getPostgreSQLEventStore(command.connectionString, {
          connectionOptions: { dumbo: pool },
        });
        await store.schema.migrate();
        answer({
          synchronous_commit: await setting(pool, 'synchronous_commit'),
          fsync: await setting(pool, 'fsync'),
        });
      } else if (command.op === 'seed') {
        versions = await seed(store, command.path);
        answer({ streams: versions.size });
      } else if (command.op === 'read') {
        const read = await readAll(pool, batchSize);
        const { rows } = await pool.execute.query(rawSql('SELECT count(*) AS n FROM emt_messages'));
        answer({ ...read, stored: Number(rows[0].n) });
      } else if (command.op === 'append') {
        const { event, appenders, events } = command;
        answer(await append(store, versions, event, appenders, events));
      } else if (command.op === 'close') {
        break;
      } else {
        throw new Error(`unknown op ${command.op}`);
      }
    }
  } finally {
    if (store) await store.close();
  }
};

await main();
