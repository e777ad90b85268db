// What single mode adds to a scrape: its serving gauges and its own request totals (labelled `single`).
import type { Listener } from '../listen/binder.js';
import { memoryView } from '../memory/index.js';
import type { AppServer } from '../server/index.js';
import { withLabels } from './json.js';
import { memoryMetrics } from './memory.js';
import type { MetricsSource } from './metrics-plane.js';
import { REQUESTS } from './requests.js';

export function singleSource(server: AppServer, listeners: readonly Listener[]): MetricsSource {
  return {
    self: 'single',
    listeners: () => listeners,
    collect: async () => {
      const { servingGauges } = await import('./worker-reply.js');
      return [withLabels(servingGauges(server), { worker: 'single' }), memoryMetrics(memoryView())];
    },
    // This image's totals (the store keeps those of the images before it, handed over).
    ownTotals: () => new Map([['single', REQUESTS.snapshot()]]),
  };
}
