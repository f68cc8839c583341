/**
 * Undoing mboxrd quoting on a streamed body: one `>` is removed from every line matching
 * `^>+From `. Works on chunks split anywhere, holding back only an undecided line start.
 */
const FROM = Buffer.from('From ');

export class MboxrdUnquoter {
  private atLineStart = true;
  private pending: Buffer = Buffer.alloc(0);

  push(input: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let chunk = input;
    if (this.pending.length > 0) {
      chunk = Buffer.concat([this.pending, input]);
      this.pending = Buffer.alloc(0);
    }
    let i = 0;
    while (i < chunk.length) {
      if (this.atLineStart) {
        let j = i;
        while (j < chunk.length && chunk[j] === 0x3e) j++;
        if (j > i) {
          const rest = chunk.subarray(j, j + FROM.length);
          if (rest.length < FROM.length && FROM.subarray(0, rest.length).equals(rest)) {
            this.pending = Buffer.from(chunk.subarray(i));
            return out;
          }
          if (rest.equals(FROM)) i++;
        }
        this.atLineStart = false;
      }
      const nl = chunk.indexOf(10, i);
      if (nl < 0) {
        out.push(chunk.subarray(i));
        break;
      }
      out.push(chunk.subarray(i, nl + 1));
      i = nl + 1;
      this.atLineStart = true;
    }
    return out;
  }

  end(): Buffer[] {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return rest.length ? [rest] : [];
  }
}
