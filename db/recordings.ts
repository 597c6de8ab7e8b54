import type { Db } from './pool.js';

export async function storeRecording(
  db: Db,
  recording: { tenantId: string; callId: string; contentType: string; bytes: Buffer; sourceUrl: string },
): Promise<void> {
  await db.query(
    `INSERT INTO call_recordings (tenant_id, call_id, content_type, size_bytes, bytes, source_url)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (tenant_id, call_id) DO UPDATE SET content_type = EXCLUDED.content_type, size_bytes = EXCLUDED.size_bytes,
       bytes = EXCLUDED.bytes, source_url = EXCLUDED.source_url, fetched_at = now()`,
    [recording.tenantId, recording.callId, recording.contentType, recording.bytes.length, recording.bytes, recording.sourceUrl],
  );
}

export async function recordingInfo(db: Db, tenantId: string, callId: string): Promise<{ contentType: string; sizeBytes: number } | undefined> {
  const result = await db.query<{ content_type: string; size_bytes: number }>(
    'SELECT content_type, size_bytes FROM call_recordings WHERE tenant_id = $1 AND call_id = $2',
    [tenantId, callId],
  );
  const row = result.rows[0];
  return row ? { contentType: row.content_type, sizeBytes: row.size_bytes } : undefined;
}

/** Bytes [start, end] inclusive, read in the database so a range request never loads the whole file. */
export async function readRecordingRange(db: Db, tenantId: string, callId: string, start: number, end: number): Promise<Buffer> {
  const result = await db.query<{ chunk: Buffer }>(
    'SELECT substring(bytes FROM $3 FOR $4) AS chunk FROM call_recordings WHERE tenant_id = $1 AND call_id = $2',
    [tenantId, callId, start + 1, end - start + 1],
  );
  return result.rows[0]?.chunk ?? Buffer.alloc(0);
}
