/**
 * The rawlog (`-r FILE`, as dsync's): every frame in one line a person can read, in the order
 * it was sent or received. Pure formatting; the connection writes the lines.
 */
import { FrameType, frameTypeName, type Frame } from './frame-codec.js';

const JSON_TYPES = new Set([FrameType.Request, FrameType.Reply, FrameType.Part, FrameType.Error, FrameType.End, FrameType.Item]);
const MAX_SHOWN = 400;

export function rawlogLine(direction: 'send' | 'recv', frame: Frame, elapsedMs: number): string {
  const arrow = direction === 'send' ? '>' : '<';
  let what: string;
  if (JSON_TYPES.has(frame.type)) {
    const text = frame.payload.toString('utf8');
    what = text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}... (${frame.payload.length} bytes)` : text;
  } else if ((frame.type === FrameType.Credit || frame.type === FrameType.Pull) && frame.payload.length === 4) {
    what = String(frame.payload.readUInt32BE(0));
  } else {
    what = `${frame.payload.length} bytes`;
  }
  return `${(elapsedMs / 1000).toFixed(3)} ${arrow} ${frameTypeName(frame.type)} ${frame.id} ${what}`;
}

export function rawlogNote(text: string, elapsedMs: number): string {
  return `${(elapsedMs / 1000).toFixed(3)} = ${text}`;
}
