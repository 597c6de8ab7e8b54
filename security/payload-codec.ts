/**
 * Encryption of every Temporal payload (workflow and activity arguments and results, signals,
 * updates, queries, memos, failures): AES-256-GCM with a fresh 12-byte nonce per payload, the key id
 * in the payload's metadata. One key encrypts; every configured key decrypts, so keys rotate
 * without breaking histories written under the previous one. Search attributes and workflow ids
 * are never encoded by any codec, so they must stay free of personal data on their own.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { METADATA_ENCODING_KEY } from '@temporalio/common';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
// The package is CommonJS: its default export is what Node's ESM loader can name.
import proto from '@temporalio/proto';
import { decodeTokenKey } from '../config/schema.js';
import type { PayloadEncryptionConfig } from '../config/schema.js';

export const encryptedEncoding = 'binary/encrypted';
export const keyIdMetadataKey = 'encryption-key-id';
const algorithm = 'aes-256-gcm';
const nonceLength = 12;
const tagLength = 16;

/** Why a payload could not be decrypted; names the key id, never the data. */
export class PayloadDecryptionError extends Error {
  override readonly name = 'PayloadDecryptionError';
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');
/** A key id read from an untrusted payload, safe to put in an error message. */
const printable = (keyId: string): string => keyId.slice(0, 64).replace(/[^\x20-\x7e]/g, '?');

export class EncryptionCodec implements PayloadCodec {
  readonly activeKeyId: string;
  private readonly keys: ReadonlyMap<string, Buffer>;

  constructor(options: { activeKeyId: string; keys: ReadonlyMap<string, Buffer> }) {
    for (const [id, key] of options.keys) {
      if (key.length !== 32) throw new Error(`payload encryption key "${id}" must be 32 bytes, got ${key.length}`);
    }
    if (!options.keys.has(options.activeKeyId)) throw new Error(`the active payload encryption key "${options.activeKeyId}" is not among the keys`);
    this.activeKeyId = options.activeKeyId;
    this.keys = options.keys;
  }

  encode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.resolve(payloads.map((payload) => this.encrypt(payload)));
  }

  decode(payloads: Payload[]): Promise<Payload[]> {
    try {
      return Promise.resolve(payloads.map((payload) => this.decrypt(payload)));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  encrypt(payload: Payload): Payload {
    const key = this.keys.get(this.activeKeyId) as Buffer;
    const nonce = randomBytes(nonceLength);
    const cipher = createCipheriv(algorithm, key, nonce, { authTagLength: tagLength });
    // The key id is authenticated too: a payload relabelled with another key id does not decrypt.
    cipher.setAAD(Buffer.from(this.activeKeyId, 'utf8'));
    const plain = proto.temporal.api.common.v1.Payload.encode(payload).finish();
    const sealed = Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return {
      metadata: {
        [METADATA_ENCODING_KEY]: Buffer.from(encryptedEncoding, 'utf8'),
        [keyIdMetadataKey]: Buffer.from(this.activeKeyId, 'utf8'),
      },
      data: sealed,
    };
  }

  /** Payloads without the encrypted encoding (histories written before the codec) pass unchanged. */
  decrypt(payload: Payload): Payload {
    const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
    if (!encoding || text(encoding) !== encryptedEncoding) return payload;
    const rawKeyId = payload.metadata?.[keyIdMetadataKey];
    if (!rawKeyId) throw new PayloadDecryptionError(`an encrypted payload has no ${keyIdMetadataKey}`);
    const keyId = text(rawKeyId);
    const key = this.keys.get(keyId);
    if (!key) throw new PayloadDecryptionError(`payload encrypted with unknown key id "${printable(keyId)}" (not in temporal.payloadEncryption.keys)`);
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < nonceLength + tagLength) throw new PayloadDecryptionError(`encrypted payload under key id "${printable(keyId)}" is truncated`);
    const decipher = createDecipheriv(algorithm, key, data.subarray(0, nonceLength), { authTagLength: tagLength });
    decipher.setAAD(rawKeyId);
    decipher.setAuthTag(data.subarray(data.length - tagLength));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(nonceLength, data.length - tagLength)), decipher.final()]);
    } catch {
      throw new PayloadDecryptionError(`encrypted payload under key id "${printable(keyId)}" failed authentication (altered, or sealed with another key of that id)`);
    }
    return proto.temporal.api.common.v1.Payload.decode(plain);
  }
}

/** The configured keys, decoded (the schema has already checked each is 32 bytes). */
export function createPayloadCodec(settings: PayloadEncryptionConfig): EncryptionCodec {
  const keys = new Map<string, Buffer>();
  for (const [id, value] of Object.entries(settings.keys)) {
    const key = decodeTokenKey(value);
    if (!key) throw new Error(`temporal.payloadEncryption.keys.${id}: must be 32 bytes as base64 or hex`);
    keys.set(id, key);
  }
  return new EncryptionCodec({ activeKeyId: settings.activeKeyId, keys });
}

const failureConverterPath = fileURLToPath(new URL('./failure-converter.cjs', import.meta.url));
const codecs = new WeakMap<PayloadEncryptionConfig, EncryptionCodec>();

/** The payload codec for these settings, built once per settings object. */
export function payloadCodecFor(settings: PayloadEncryptionConfig): EncryptionCodec {
  let codec = codecs.get(settings);
  if (!codec) {
    codec = createPayloadCodec(settings);
    codecs.set(settings, codec);
  }
  return codec;
}

/**
 * The data converter every Temporal client and worker uses (`dataConverter` of Client, Worker and
 * the replayer); the failure converter moves error messages into the encrypted payloads too.
 */
export function temporalDataConverter(settings: PayloadEncryptionConfig): DataConverter {
  return { payloadCodecs: [payloadCodecFor(settings)], failureConverterPath };
}

/** For bundleWorkflowCode: workflows build their failures with the same converter. */
export const workflowFailureConverterPath = failureConverterPath;
