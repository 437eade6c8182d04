import { type Kysely, sql } from 'kysely';

/**
 * Signed anchor transactions, written before they are broadcast and kept byte for byte, so that
 * after a timeout, a crash or a restart the worker re-sends the same transaction (same hash) and
 * follows it instead of anchoring the head a second time. A fee-bumped replacement is its own row
 * (same nonce) naming the transaction it `replaces`.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('anchor_outbox')
    .addColumn('tx_hash', 'text', (c) => c.primaryKey())
    .addColumn('chain_id', 'text', (c) => c.notNull())
    .addColumn('signer', 'text', (c) => c.notNull())
    .addColumn('nonce', 'bigint', (c) => c.notNull())
    .addColumn('tree_size', 'bigint', (c) => c.notNull())
    .addColumn('root', 'text', (c) => c.notNull())
    .addColumn('previous_size', 'bigint', (c) => c.notNull())
    .addColumn('previous_root', 'text', (c) => c.notNull())
    .addColumn('manifest_hash', 'text', (c) => c.notNull())
    .addColumn('raw_transaction', 'text', (c) => c.notNull())
    .addColumn('replaces', 'text')
    .addColumn('max_fee_per_gas', 'numeric', (c) => c.notNull())
    .addColumn('max_priority_fee_per_gas', 'numeric', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('pending', 'mined', 'failed', 'replaced')`),
    )
    .addColumn('block_number', 'bigint')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('sent_at', 'timestamptz')
    .addColumn('settled_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('anchor_outbox_unsettled')
    .on('anchor_outbox')
    .columns(['chain_id', 'signer', 'nonce'])
    .where(sql.ref('status'), '=', 'pending')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('anchor_outbox').execute();
}
