/**
 * The app's reading of the database clock. Leases, timers and deadlines are
 * computed in SQL from fb_now() and never from this; the app needs a time of
 * its own only where it must know it before it writes: a timeline event's
 * time is part of its hash, and the hash is computed before the insert. That
 * time is the database's clock as last observed (statements return fb_now()),
 * so moving the database's clock (firebreak_advance_clock, in tests) moves the
 * events' times too.
 */
/** Clocks closer than this (beyond the round trip's own uncertainty) are taken to agree. */
const AGREEMENT_MS = 25;

export class DatabaseClock {
  /** Database time minus local time, in ms. */
  private offsetMs = 0;
  /** Half the round trip of the observation the offset came from: how far off it can be. */
  private uncertaintyMs = Number.POSITIVE_INFINITY;
  private observedAt = 0;
  private last = 0;

  /** Now on the database's clock, never earlier than a time already handed out. */
  now(): number {
    this.last = Math.max(this.last, Date.now() + this.offsetMs);
    return this.last;
  }

  date(): Date {
    return new Date(this.now());
  }

  /**
   * A database time (fb_now() of a statement) sent at `sentAt` and answered at
   * `receivedAt` (local ms). The true offset lies within its estimate ± half the
   * round trip; a tighter observation, or one the current offset falls outside
   * of (the database's clock moved), replaces the current one.
   */
  observe(databaseTime: Date | number | null | undefined, sentAt: number, receivedAt: number): void {
    if (databaseTime === null || databaseTime === undefined) return;
    const db = typeof databaseTime === 'number' ? databaseTime : databaseTime.getTime();
    if (!Number.isFinite(db)) return;
    const half = Math.max(0, receivedAt - sentAt) / 2;
    // When the database agrees with the local clock to within what a round trip can tell, the local
    // clock is the better reading (no round-trip noise): production, where both follow NTP.
    const estimate = Math.abs(db - (sentAt + receivedAt) / 2) <= half + AGREEMENT_MS ? 0 : db - (sentAt + receivedAt) / 2;
    // Trust in an old observation fades (drift, a moved clock): 1 ms per second.
    const current = this.uncertaintyMs + (receivedAt - this.observedAt) / 1_000;
    if (half <= current || Math.abs(estimate - this.offsetMs) > half + current) {
      this.offsetMs = estimate;
      this.uncertaintyMs = half;
      this.observedAt = receivedAt;
    }
  }
}
