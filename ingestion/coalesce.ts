/**
 * Coalescing for writes that each cost a WAL flush. While `maxInFlight` batches are running, new
 * items wait; when one finishes, everything that waited goes in the next batch. At low load an item
 * goes at once, alone, so nothing is delayed to form a batch; under load the batches grow by
 * themselves and one flush serves many callers.
 */
export type ItemOutcome<Result> = { value: Result } | { error: unknown };

export interface CoalesceOptions<Item> {
  /** Batches running at once; more would only queue in PostgreSQL. */
  maxInFlight?: number;
  /** A batch's total weight, at most (a single heavier item still goes, alone). */
  maxWeight?: number;
  weightOf?: (item: Item) => number;
}

/**
 * `runBatch` gets the items in arrival order and returns one outcome per item, in that order; if it
 * throws, every item of the batch fails with that error.
 */
export function coalesce<Item, Result>(runBatch: (items: Item[]) => Promise<Array<ItemOutcome<Result>>>, options: CoalesceOptions<Item> = {}): (item: Item) => Promise<Result> {
  const maxInFlight = options.maxInFlight ?? 2;
  const maxWeight = options.maxWeight ?? 500;
  const weightOf = options.weightOf ?? (() => 1);
  const queue: Array<{ item: Item; resolve: (result: Result) => void; reject: (error: unknown) => void }> = [];
  let inFlight = 0;

  const pump = (): void => {
    while (inFlight < maxInFlight && queue.length > 0) {
      const batch: typeof queue = [];
      let weight = 0;
      for (let next = queue[0]; next && (batch.length === 0 || weight + weightOf(next.item) <= maxWeight); next = queue[0]) {
        batch.push(next);
        weight += weightOf(next.item);
        queue.shift();
      }
      inFlight++;
      runBatch(batch.map((waiting) => waiting.item))
        .then(
          (outcomes) =>
            batch.forEach((waiting, index) => {
              const outcome = outcomes[index] ?? { error: new Error('the batch returned no outcome for this item') };
              if ('value' in outcome) waiting.resolve(outcome.value);
              else waiting.reject(outcome.error);
            }),
          (error: unknown) => batch.forEach((waiting) => waiting.reject(error)),
        )
        .finally(() => {
          inFlight--;
          pump();
        });
    }
  };

  return (item) =>
    new Promise<Result>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      pump();
    });
}
