/** Aggregation of worker metrics in the primary when WORKERS>1 (filled in by the metrics plugin work). */
export function startClusterMetrics (): void {}
