/**
 * Progress of a long CLI wait on stderr: one line rewritten in place on a
 * terminal, a line per update (at most one a second) when stderr is a file or
 * a pipe. Nothing is shown for waits shorter than a second.
 */
export interface Progress {
  update(text: string): void;
  /** Clear the progress line (a terminal), so the result prints on a clean line. */
  done(): void;
}

export function progress(stream: NodeJS.WriteStream = process.stderr, now: () => number = Date.now): Progress {
  const started = now();
  let last = 0;
  let shown = false;
  return {
    update(text) {
      const t = now();
      if (t - started < 1_000 || t - last < 1_000) return;
      last = t;
      shown = true;
      if (stream.isTTY) stream.write(`\r\x1b[2K${text}`);
      else stream.write(`${text}\n`);
    },
    done() {
      if (shown && stream.isTTY) stream.write('\r\x1b[2K');
    },
  };
}
