/** Progress of long CLI waits (audit verify on a big database): quiet for a second, then at most a line a second. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { progress } from '../../src/cli/progress.js';

function sink(isTTY: boolean) {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk);
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  (stream as { isTTY: boolean }).isTTY = isTTY;
  return { stream, text: () => text };
}

describe('CLI progress', () => {
  it('says nothing for a short wait, then a line at most once a second (file or pipe)', () => {
    let t = 0;
    const out = sink(false);
    const p = progress(out.stream, () => t);
    p.update('a');
    t = 900;
    p.update('b');
    expect(out.text()).toBe('');
    t = 1_000;
    p.update('c');
    t = 1_500;
    p.update('d');
    t = 2_100;
    p.update('e');
    p.done();
    expect(out.text()).toBe('c\ne\n');
  });

  it('rewrites one line on a terminal and clears it when done', () => {
    let t = 0;
    const out = sink(true);
    const p = progress(out.stream, () => t);
    t = 1_200;
    p.update('verifying: 10/20 events (50%)');
    t = 2_400;
    p.update('verifying: 20/20 events (100%)');
    p.done();
    expect(out.text()).toBe('\r\x1b[2Kverifying: 10/20 events (50%)\r\x1b[2Kverifying: 20/20 events (100%)\r\x1b[2K');
  });
});
