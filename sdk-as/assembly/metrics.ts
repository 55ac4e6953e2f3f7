// Metrics defined by the filter; the host exports them with the filter's name as a label.

import { defineMetric, getMetric, incrementMetric, recordMetric } from "./hostcalls";
import { MetricType, Status } from "./types";

/**
 * A metric handle. Define metrics once (in `onConfigure` or at top level), keep the handle,
 * and use it on every request: defining is a host call with a string, using is one with an id.
 *
 * @example
 * const denied = Counter.define("path_deny_denied_total");
 * denied.increment();
 */
export class Metric {
  constructor(public readonly id: u32, public readonly type: MetricType) {}

  /** The current value (0 when unknown). */
  value(): u64 {
    return getMetric(this.id);
  }
}

/** A monotonically increasing count. */
export class Counter extends Metric {
  static define(name: string): Counter {
    return new Counter(defineMetric(MetricType.Counter, name), MetricType.Counter);
  }

  increment(delta: u64 = 1): Status {
    return incrementMetric(this.id, <i64>delta);
  }
}

/** A value that goes up and down. */
export class Gauge extends Metric {
  static define(name: string): Gauge {
    return new Gauge(defineMetric(MetricType.Gauge, name), MetricType.Gauge);
  }

  set(value: u64): Status {
    return recordMetric(this.id, value);
  }

  add(delta: i64): Status {
    return incrementMetric(this.id, delta);
  }
}

/** A distribution of observed values. */
export class Histogram extends Metric {
  static define(name: string): Histogram {
    return new Histogram(defineMetric(MetricType.Histogram, name), MetricType.Histogram);
  }

  record(value: u64): Status {
    return recordMetric(this.id, value);
  }
}
