/**
 * The media types a stored recording may be served with. A recording host's own Content-Type is
 * never passed through as is: an audio type is kept (in its canonical spelling), a generic binary
 * type is replaced by what the bytes are, and anything else (HTML, JSON, images…) is refused at
 * fetch time. Whatever is stored, only these types (or application/octet-stream) are served.
 */

const canonicalTypes: Record<string, string> = {
  'audio/wav': 'audio/wav',
  'audio/x-wav': 'audio/wav',
  'audio/wave': 'audio/wav',
  'audio/vnd.wave': 'audio/wav',
  'audio/mpeg': 'audio/mpeg',
  'audio/mp3': 'audio/mpeg',
  'audio/mpeg3': 'audio/mpeg',
  'audio/x-mpeg-3': 'audio/mpeg',
  'audio/ogg': 'audio/ogg',
  'audio/opus': 'audio/ogg',
  'audio/webm': 'audio/webm',
  'audio/mp4': 'audio/mp4',
  'audio/m4a': 'audio/mp4',
  'audio/x-m4a': 'audio/mp4',
  'audio/aac': 'audio/aac',
  'audio/flac': 'audio/flac',
  'audio/x-flac': 'audio/flac',
  'audio/basic': 'audio/basic',
  'audio/amr': 'audio/amr',
  'audio/3gpp': 'audio/3gpp',
};

/** Served for bytes whose audio type is unknown (with `Content-Disposition: attachment`). */
export const opaqueRecordingType = 'application/octet-stream';

/** The canonical spelling of an audio type we serve, or undefined for anything else. */
export function servableAudioType(type: string | undefined): string | undefined {
  const bare = type?.split(';')[0]?.trim().toLowerCase();
  return bare ? canonicalTypes[bare] : undefined;
}

/** The audio format the bytes start with (WAV, MP3, AAC, Ogg, FLAC, WebM, MP4), if any. */
export function sniffAudioType(bytes: Uint8Array): string | undefined {
  const ascii = (start: number, end: number): string => String.fromCharCode(...bytes.subarray(start, end));
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WAVE') return 'audio/wav';
  if (ascii(0, 4) === 'OggS') return 'audio/ogg';
  if (ascii(0, 4) === 'fLaC') return 'audio/flac';
  if (ascii(4, 8) === 'ftyp') return 'audio/mp4';
  if (bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3) return 'audio/webm';
  if (ascii(0, 3) === 'ID3') return 'audio/mpeg';
  const first = bytes[0] ?? 0;
  const second = bytes[1] ?? 0;
  if (first === 0xff && (second & 0xf6) === 0xf0) return 'audio/aac';
  if (first === 0xff && (second & 0xe0) === 0xe0) return 'audio/mpeg';
  return undefined;
}

const genericBinaryTypes = new Set(['application/octet-stream', 'binary/octet-stream', 'application/binary', 'application/x-binary']);

/**
 * The type to store a fetched recording under, or undefined when the host declared something that is
 * not audio (then the fetch is refused). Undeclared or generic binary bodies are judged by their bytes.
 */
export function recordingTypeToStore(declared: string | undefined, bytes: Uint8Array): string | undefined {
  const audio = servableAudioType(declared);
  if (audio) return audio;
  const bare = declared?.split(';')[0]?.trim().toLowerCase();
  if (bare === undefined || bare === '' || genericBinaryTypes.has(bare) || bare.startsWith('audio/')) return sniffAudioType(bytes) ?? opaqueRecordingType;
  return undefined;
}
