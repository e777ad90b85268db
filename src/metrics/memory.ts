// The memory budget as gauges (memory/cgroup.ts): the same numbers `nserve ctl stats` shows.
import type { MemoryView } from '../memory/index.js';
import { counter, gauge, type MetricJson } from './json.js';

export function memoryMetrics(m: MemoryView): MetricJson[] {
  const out = [
    gauge(
      'nserve_memory_limit_bytes',
      'The memory limit: the cgroup\'s effective limit, or the host\'s memory (limited="false")',
      [{ labels: { cgroup: m.cgroup, limited: String(m.limited) }, value: m.limit }],
    ),
    gauge('nserve_memory_usage_bytes', 'Memory charged to the cgroup, page cache included', [
      { value: m.usage },
    ]),
    gauge(
      'nserve_memory_working_set_bytes',
      'Usage minus inactive file cache, as kubelet counts it (what the OOM killer cannot reclaim)',
      [{ value: m.workingSet }],
    ),
    gauge('nserve_memory_headroom_bytes', 'The limit minus the working set', [{ value: m.headroom }]),
    gauge(
      'nserve_memory_oom_group',
      '1 when cgroup v2 memory.oom.group=1: an OOM kill ends every process of the cgroup',
      [{ value: m.oomGroup ? 1 : 0 }],
    ),
  ];
  if (m.oomKills !== null)
    out.push(
      counter(
        'nserve_memory_oom_kills_total',
        "OOM kills in the cgroup, any process (memory.oom_control or memory.events: the kernel's count)",
        [{ value: m.oomKills }],
      ),
    );
  if (m.hotRestartNeed != null)
    out.push(
      gauge(
        'nserve_memory_hot_restart_need_bytes',
        "What a cluster hot restart would add: the serving workers' anonymous memory, with a 10% margin",
        [{ value: m.hotRestartNeed }],
      ),
    );
  return out;
}
