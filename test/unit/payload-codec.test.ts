import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Payload } from '@temporalio/common';
import { loadConfig } from '../../config/load.js';
import { PayloadDecryptionError, createPayloadCodec, encryptedEncoding, keyIdMetadataKey } from '../../security/payload-codec.js';
import type { EncryptionCodec } from '../../security/payload-codec.js';
import { configError, writeConfig } from '../harness/config-files.js';

const text = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString('utf8');
const key = (): string => randomBytes(32).toString('base64');
const lead = { name: 'Ada Lovelace', phone: '+14155550123', text: 'Can we move my appointment to Friday?' };

async function roundTrip(encoder: EncryptionCodec, decoder: EncryptionCodec, value: unknown): Promise<unknown> {
  const [sealed] = await encoder.encode([defaultPayloadConverter.toPayload(value)]);
  assert.ok(sealed);
  const [opened] = await decoder.decode([sealed]);
  assert.ok(opened);
  return defaultPayloadConverter.fromPayload(opened);
}

describe('payload codec (AES-256-GCM)', () => {
  const first = key();
  const second = key();
  const codecOld = createPayloadCodec({ activeKeyId: 'k1', keys: { k1: first } });
  const codecRotated = createPayloadCodec({ activeKeyId: 'k2', keys: { k1: first, k2: second } });

  it('encrypts a payload so none of its text is left, and decrypts it back to the same value', async () => {
    const plain = defaultPayloadConverter.toPayload(lead);
    const [sealed] = await codecOld.encode([plain]);
    assert.ok(sealed?.data);
    assert.equal(text(sealed.metadata?.encoding), encryptedEncoding);
    assert.equal(text(sealed.metadata?.[keyIdMetadataKey]), 'k1');
    assert.deepEqual(Object.keys(sealed.metadata ?? {}).sort(), ['encoding', keyIdMetadataKey].sort(), 'the original metadata (json/plain) is inside the ciphertext');
    const raw = Buffer.from(sealed.data).toString('latin1');
    for (const secret of [lead.name, lead.phone, lead.text, 'json/plain']) assert.ok(!raw.includes(secret), `"${secret}" is not in the ciphertext`);
    assert.deepEqual(await roundTrip(codecOld, codecOld, lead), lead);
  });

  it('uses a fresh nonce for every payload: the same value never encrypts to the same bytes', async () => {
    const payload = defaultPayloadConverter.toPayload(lead);
    const [a, b] = await codecOld.encode([payload, payload]);
    assert.ok(a?.data && b?.data);
    assert.notDeepEqual(Buffer.from(a.data).subarray(0, 12), Buffer.from(b.data).subarray(0, 12));
    assert.notDeepEqual(Buffer.from(a.data), Buffer.from(b.data));
  });

  it('rotates: the new key encrypts while the old one still decrypts what it sealed', async () => {
    const [sealedBefore] = await codecOld.encode([defaultPayloadConverter.toPayload(lead)]);
    assert.ok(sealedBefore);
    const [openedAfter] = await codecRotated.decode([sealedBefore]);
    assert.deepEqual(defaultPayloadConverter.fromPayload(openedAfter as Payload), lead);
    const [sealedAfter] = await codecRotated.encode([defaultPayloadConverter.toPayload(lead)]);
    assert.equal(text(sealedAfter?.metadata?.[keyIdMetadataKey]), 'k2');
  });

  it('refuses a payload under a key id it does not have, naming the key id and nothing of the data', async () => {
    const [sealed] = await codecRotated.encode([defaultPayloadConverter.toPayload(lead)]);
    assert.ok(sealed);
    await assert.rejects(codecOld.decode([sealed]), (error: unknown) => {
      assert.ok(error instanceof PayloadDecryptionError);
      assert.match(error.message, /unknown key id "k2"/);
      for (const secret of [lead.name, lead.phone, second]) assert.ok(!error.message.includes(secret));
      return true;
    });
  });

  it('passes payloads without the encrypted encoding through unchanged (histories from before the codec)', async () => {
    const plain = defaultPayloadConverter.toPayload(lead);
    const binary = defaultPayloadConverter.toPayload(new Uint8Array([1, 2, 3]));
    const [a, b] = await codecOld.decode([plain, binary]);
    assert.equal(a, plain);
    assert.equal(b, binary);
  });

  it('rejects altered ciphertext, a relabelled key id and a truncated payload', async () => {
    const [sealed] = await codecRotated.encode([defaultPayloadConverter.toPayload(lead)]);
    assert.ok(sealed?.data);
    const flipped = Buffer.from(sealed.data);
    flipped[20] = (flipped[20] ?? 0) ^ 0x01;
    await assert.rejects(codecRotated.decode([{ ...sealed, data: flipped }]), /key id "k2" failed authentication/);
    // The same bytes claimed under the other key (which is configured) do not open either.
    await assert.rejects(codecRotated.decode([{ ...sealed, metadata: { ...sealed.metadata, [keyIdMetadataKey]: Buffer.from('k1') } }]), /key id "k1" failed authentication/);
    await assert.rejects(codecRotated.decode([{ ...sealed, data: Buffer.from(sealed.data).subarray(0, 20) }]), /truncated/);
    await assert.rejects(codecRotated.decode([{ metadata: { encoding: Buffer.from(encryptedEncoding) }, data: sealed.data }]), /no encryption-key-id/);
  });

  it('encrypts payloads that have no data (undefined) and empty arrays of payloads', async () => {
    assert.deepEqual(await codecOld.encode([]), []);
    assert.equal(await roundTrip(codecOld, codecOld, undefined), undefined);
  });
});

describe('payload encryption configuration', () => {
  it('is configured in temporal-dev.yaml, with the active key among the keys', () => {
    const { payloadEncryption } = loadConfig({}).temporal;
    assert.ok(payloadEncryption.keys[payloadEncryption.activeKeyId]);
    assert.equal(createPayloadCodec(payloadEncryption).activeKeyId, payloadEncryption.activeKeyId);
  });

  it('takes the key from the environment (${SWITCHBOARD_PAYLOAD_KEY})', async () => {
    const fromEnv = key();
    const { payloadEncryption } = loadConfig({ SWITCHBOARD_PAYLOAD_KEY: fromEnv }).temporal;
    assert.equal(payloadEncryption.keys[payloadEncryption.activeKeyId], fromEnv);
    const other = loadConfig({});
    await assert.rejects(
      createPayloadCodec(other.temporal.payloadEncryption).decode(await createPayloadCodec(payloadEncryption).encode([defaultPayloadConverter.toPayload(lead)])),
      /failed authentication/,
      'a different key under the same id does not decrypt',
    );
  });

  it('fails start-up naming the setting when a key is not 32 bytes, without echoing it', async () => {
    const file = await writeConfig((doc) => {
      doc.temporal.payloadEncryption = { activeKeyId: 'k1', keys: { k1: Buffer.alloc(16, 7).toString('base64') } };
    });
    const message = configError({ SWITCHBOARD_CONFIG: file });
    assert.match(message, /temporal\.payloadEncryption\.keys\.k1: must be 32 bytes/);
    assert.doesNotMatch(message, new RegExp(Buffer.alloc(16, 7).toString('base64').slice(0, 12)));
  });

  it('fails start-up when the active key is not among the keys, or when there are no keys at all', async () => {
    const missingActive = await writeConfig((doc) => {
      doc.temporal.payloadEncryption = { activeKeyId: 'k9', keys: { k1: key() } };
    });
    assert.match(configError({ SWITCHBOARD_CONFIG: missingActive }), /temporal\.payloadEncryption\.activeKeyId: must name one of/);
    const none = await writeConfig((doc) => {
      delete (doc.temporal as Partial<typeof doc.temporal>).payloadEncryption;
    });
    assert.match(configError({ SWITCHBOARD_CONFIG: none }), /temporal\.payloadEncryption: must be set/);
  });
});
