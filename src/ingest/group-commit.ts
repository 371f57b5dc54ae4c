/**
 * Group commit: items submitted within one turn of the event loop are stored
 * by one statement (one round trip, one WAL flush), and each submitter hears
 * back only after that statement committed. A group never holds two items
 * that share a key (they would upsert one row twice); the later one waits for
 * the next group. When a group fails, each of its items is tried on its own,
 * so one bad item cannot fail, or be answered for, the others.
 */
import type { Logger } from 'pino';
import { isDatabaseUnavailable, pgErrorCode, PgCode } from '../store/index.js';

export interface GroupCommitOptions<T, R> {
  /** Store a group in one statement; one result per item, in order. */
  store(items: readonly T[]): Promise<R[]>;
  keys(item: T): readonly string[];
  /** Rows an item writes (caps a group's size). */
  weight(item: T): number;
  /** Groups being stored at once (each holds a connection). */
  maxInFlight: number;
  /** Most rows in one group. */
  maxGroup: number;
  logger: Logger;
}

interface Waiting<T, R> {
  item: T;
  resolve(result: R): void;
  reject(err: unknown): void;
}

export class GroupCommit<T, R> {
  private queue: Array<Waiting<T, R>> = [];
  private scheduled = false;
  private inFlight = 0;

  constructor(private readonly options: GroupCommitOptions<T, R>) {}

  /** Resolves once the item's group committed (or rejects with why it was not stored). */
  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // After this turn's I/O callbacks: every request that arrived with this one joins its group.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.queue.length > 0 && this.inFlight < this.options.maxInFlight) {
      const group = this.take();
      this.inFlight += 1;
      void this.run(group).finally(() => {
        this.inFlight -= 1;
        if (this.queue.length > 0) this.schedule();
      });
    }
  }

  /** The next group: oldest first, skipping (for now) items whose keys are already in it. */
  private take(): Array<Waiting<T, R>> {
    const group: Array<Waiting<T, R>> = [];
    const rest: Array<Waiting<T, R>> = [];
    const keys = new Set<string>();
    let rows = 0;
    for (const w of this.queue) {
      const itemKeys = this.options.keys(w.item);
      const weight = Math.max(1, this.options.weight(w.item));
      const fits = group.length === 0 || (rows + weight <= this.options.maxGroup && !itemKeys.some((k) => keys.has(k)));
      if (!fits) {
        rest.push(w);
        continue;
      }
      group.push(w);
      rows += weight;
      for (const k of itemKeys) keys.add(k);
    }
    this.queue = rest;
    return group;
  }

  private async run(group: Array<Waiting<T, R>>): Promise<void> {
    let results: R[];
    try {
      results = await this.options.store(group.map((w) => w.item));
    } catch (err) {
      // The database is gone: every item gets the same answer (503, retry). A deadlock with another group is not that.
      const conflict = pgErrorCode(err) === PgCode.deadlockDetected || pgErrorCode(err) === PgCode.serializationFailure;
      if (group.length === 1 || (isDatabaseUnavailable(err) && !conflict)) {
        for (const w of group) w.reject(err);
        return;
      }
      this.options.logger.warn({ err: (err as Error).message, items: group.length }, 'group commit failed; storing its items one by one');
      await Promise.all(
        group.map(async (w) => {
          try {
            const [one] = await this.options.store([w.item]);
            w.resolve(one!);
          } catch (e) {
            w.reject(e);
          }
        }),
      );
      return;
    }
    group.forEach((w, i) => w.resolve(results[i]!));
  }
}
