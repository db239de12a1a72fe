import net from 'node:net';

/**
 * Raw HTTP/1.x and HTTP/2 over a TCP socket, for requests no well-behaved client sends:
 * missing or doubled headers, a stream without `:authority`, HEADERS that never end.
 */

/** The HTTP/2 client connection preface. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** HTTP/2 frame types used here. */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;
/** HTTP/2 frame flags used here. */
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

/** One HTTP/2 frame: 9-byte header (length, type, flags, stream id) and the payload. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/** An HPACK integer with an `prefixBits`-bit prefix (RFC 7541 section 5.1), the first byte's high bits set to `first`. */
function hpackInt(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const bytes = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** An HPACK header block of literal fields without indexing and without Huffman coding, so any name or value can be sent. */
export function headerBlock(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(Buffer.from([0x00]), hpackInt(n.length, 7, 0), n, hpackInt(v.length, 7, 0), v);
  }
  return Buffer.concat(parts);
}

/** The HTTP/2 preface and an empty SETTINGS frame: what a client sends first. */
export function h2Greeting(): Buffer {
  return Buffer.concat([H2_PREFACE, frame(FrameType.SETTINGS, 0, 0)]);
}

/** A frame as read back from a server. */
export interface ReadFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/**
 * The `:status` of a response header block when the server sent it as an indexed field of
 * HPACK's static table (nghttp2 does for 200, 204, 206, 304, 400, 404 and 500); undefined
 * for any other encoding.
 */
export function indexedStatus(block: Buffer): number | undefined {
  const statuses: Record<number, number> = { 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 };
  return statuses[block[0] ?? -1];
}

/** A raw TCP connection to 127.0.0.1: what it received, and whether the server closed it. */
export interface RawConnection {
  readonly socket: net.Socket;
  /** Every byte received so far. */
  received(): Buffer;
  /** Resolves when the socket has closed (either side), with every byte received. */
  readonly closed: Promise<Buffer>;
  /** The HTTP/2 frames received so far (call only on an HTTP/2 connection). */
  frames(): ReadFrame[];
  /** Resolves with the first frame matching `match`, or undefined if the socket closes first. */
  waitForFrame(match: (frame: ReadFrame) => boolean): Promise<ReadFrame | undefined>;
  /** Resolves once `text` has been received, or when the socket closes (then false). */
  waitForText(text: string): Promise<boolean>;
  write(data: Buffer | string): void;
  /** Half-closes: the client sends nothing more (FIN), the server may still answer. */
  end(): void;
  destroy(): void;
}

/** Opens a TCP connection to `port` on 127.0.0.1 and resolves once it is connected. */
export async function rawConnect(port: number): Promise<RawConnection> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const chunks: Buffer[] = [];
  const listeners = new Set<() => void>();
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    for (const listener of [...listeners]) listener();
  });
  const closed = new Promise<Buffer>((resolve) =>
    socket.once('close', () => {
      for (const listener of [...listeners]) listener();
      resolve(Buffer.concat(chunks));
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const received = () => Buffer.concat(chunks);
  const frames = (): ReadFrame[] => {
    const bytes = received();
    const out: ReadFrame[] = [];
    for (let at = 0; at + 9 <= bytes.length;) {
      const length = bytes.readUIntBE(at, 3);
      if (at + 9 + length > bytes.length) break;
      out.push({
        type: bytes[at + 3]!,
        flags: bytes[at + 4]!,
        streamId: bytes.readUInt32BE(at + 5) & 0x7fffffff,
        payload: bytes.subarray(at + 9, at + 9 + length),
      });
      at += 9 + length;
    }
    return out;
  };
  const until = <T>(check: () => T | undefined, onClose: T): Promise<T> =>
    new Promise((resolve) => {
      const listener = () => {
        const found = check();
        if (found !== undefined) {
          listeners.delete(listener);
          resolve(found);
        } else if (socket.destroyed) {
          listeners.delete(listener);
          resolve(onClose);
        }
      };
      listeners.add(listener);
      listener();
    });
  return {
    socket,
    received,
    closed,
    frames,
    waitForFrame: (match) => until(() => frames().find(match), undefined),
    waitForText: (text) => until(() => (received().toString('latin1').includes(text) ? true : undefined), false),
    write: (data) => {
      if (!socket.destroyed) socket.write(data);
    },
    end: () => socket.end(),
    destroy: () => socket.destroy(),
  };
}

/** Sends `request` as bytes on a new connection and resolves with everything received until the server closes it. */
export async function rawExchange(port: number, request: Buffer | string): Promise<string> {
  const connection = await rawConnect(port);
  connection.write(request);
  return (await connection.closed).toString('latin1');
}
