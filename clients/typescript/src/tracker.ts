/**
 * Per-room sequence tracking: deduplication by (room, n) and the cursor to resume from.
 *
 * The cursor of a room is its *contiguous* high-water mark: every n at or
 * below it has been seen. Numbers seen above it (an `ok` for our own message
 * that overtook someone else's `msg.new`, say) are remembered until the hole
 * below them fills. Resuming from the contiguous mark, never from the highest
 * number seen, is what keeps a reconnect from skipping the message in the hole.
 */
export class SeqTracker {
  private readonly base = new Map<string, number>();
  private readonly above = new Map<string, Set<number>>();

  /** Start from these cursors (what the app persisted). */
  constructor(initial: { readonly [room: string]: number } = {}) {
    for (const [room, n] of Object.entries(initial)) this.base.set(room, n);
  }

  has(room: string, n: number): boolean {
    const base = this.base.get(room);
    if (base !== undefined && n <= base) return true;
    return this.above.get(room)?.has(n) ?? false;
  }

  /** The cursor of `room`, or undefined for a room never seen. */
  cursor(room: string): number | undefined {
    return this.base.get(room);
  }

  /**
   * Record `n`; false when it was already seen (a duplicate to drop).
   * A room seen for the first time starts at n - 1: its earlier history is
   * the app's business (REST), not a hole to wait for.
   */
  see(room: string, n: number): boolean {
    if (!this.base.has(room)) this.base.set(room, n - 1);
    if (this.has(room, n)) return false;
    let base = this.base.get(room) ?? 0;
    const set = this.above.get(room) ?? new Set<number>();
    set.add(n);
    while (set.has(base + 1)) {
      base += 1;
      set.delete(base);
    }
    this.base.set(room, base);
    if (set.size > 0) this.above.set(room, set);
    else this.above.delete(room);
    return true;
  }

  /** Everything up to `n` is covered (resume.done, a reloaded history): never moves back. */
  advance(room: string, n: number): void {
    const base = Math.max(this.base.get(room) ?? n, n);
    const set = this.above.get(room);
    let b = base;
    if (set) {
      for (const x of [...set]) if (x <= b) set.delete(x);
      while (set.has(b + 1)) {
        b += 1;
        set.delete(b);
      }
      if (set.size === 0) this.above.delete(room);
    }
    this.base.set(room, b);
  }

  /** The next number expected in `room` is more than one above the cursor. */
  isAhead(room: string, n: number): boolean {
    const base = this.base.get(room);
    return base !== undefined && n > base + 1;
  }

  snapshot(): { [room: string]: number } {
    return Object.fromEntries(this.base);
  }
}
