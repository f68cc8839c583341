/**
 * A peer broke the protocol: a frame too large, of an unknown type, a payload of the wrong
 * shape, a body longer or shorter than it said. The connection is closed; the run fails with
 * exit 65 (bad data), naming the peer.
 */
import { MailferryError } from '../model/errors.js';

export class ProtocolError extends MailferryError {
  constructor(message: string) {
    super('data', `protocol error: ${message}`);
    this.name = 'ProtocolError';
  }
}
