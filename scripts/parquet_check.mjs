// parquet_check.mjs reads a Parquet file written by `vaultd events export`
// with DuckDB, a reader independent of the Go library that wrote it.
//
//   node scripts/parquet_check.mjs dump FILE     print {schema, meta, rows} as JSON
//   node scripts/parquet_check.mjs example FILE  run the README's example queries on an access export
//
// It loads @duckdb/node-api (binaries inside the npm package, nothing
// downloaded at run time) from $PARQUET_NODE_MODULES/node_modules, by
// default ~/.cache/vaultaire/npm/node_modules. Install it with
//
//   npm install --prefix ~/.cache/vaultaire/npm @duckdb/node-api@1.5.6-r.1
//
// Exit status 3 means the module is missing (the Go test then skips).
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

const prefix = process.env.PARQUET_NODE_MODULES || join(homedir(), '.cache', 'vaultaire', 'npm');
let duckdb;
try {
  duckdb = createRequire(join(prefix, 'package.json'))('@duckdb/node-api');
} catch (err) {
  console.error(`@duckdb/node-api is not installed under ${prefix}/node_modules (${err.code || err.message}); ` +
    `install it with: npm install --prefix ${prefix} @duckdb/node-api@1.5.6-r.1`);
  process.exit(3);
}

const [mode, file] = process.argv.slice(2);
if (!file || !['dump', 'example'].includes(mode)) {
  console.error('usage: node parquet_check.mjs dump|example FILE');
  process.exit(2);
}
const lit = `'${file.replaceAll("'", "''")}'`;
const db = await duckdb.DuckDBInstance.create(':memory:');
const conn = await db.connect();
await conn.run("SET TimeZone = 'UTC'");
const all = async (sql) => (await conn.runAndReadAll(sql)).getRowObjectsJson();

if (mode === 'dump') {
  const out = {
    version: (await all('SELECT version() AS v'))[0].v,
    schema: await all(`SELECT name, type, converted_type, logical_type::VARCHAR AS logical_type, repetition_type
                         FROM parquet_schema(${lit})`),
    meta: await all(`SELECT row_group_id, row_group_num_rows, path_in_schema, compression
                       FROM parquet_metadata(${lit}) ORDER BY row_group_id, column_id`),
    types: await all(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(${lit}))`),
    // to_json keeps NULLs, lists and numbers as such; the file's row order is kept.
    rows: (await all(`SELECT to_json(t)::VARCHAR AS j FROM read_parquet(${lit}) t`)).map((r) => JSON.parse(r.j)),
  };
  console.log(JSON.stringify(out));
} else {
  const queries = [
    ['bytes read per tenant per hour', `
SELECT tenant,
       date_trunc('hour', time) AS hour,
       sum(bytes_out)           AS bytes_read,
       count(*)                 AS gets
FROM read_parquet(${lit})
WHERE operation = 'GetObject' AND status < 300
GROUP BY ALL
ORDER BY hour, tenant`],
    ['hottest keys', `
SELECT bucket, key, count(*) AS reads, sum(bytes_out) AS bytes_read
FROM read_parquet(${lit})
WHERE operation = 'GetObject'
GROUP BY ALL
ORDER BY reads DESC, bytes_read DESC, bucket, key
LIMIT 10`],
  ];
  for (const [title, sql] of queries) {
    console.log(`-- ${title}${sql}`);
    console.table(await all(sql));
  }
}
