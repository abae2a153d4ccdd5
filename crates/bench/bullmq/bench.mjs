#!/usr/bin/env node
// BullMQ peer baseline for the switchyard job queue benchmark.
//
// Usage:
//   node bench.mjs --concurrency N --jobs M [--redis redis://127.0.0.1:6379] [--pickup-samples K]
//
// Phases (one Worker with `concurrency: N`, processor is an async no-op):
//   a. enqueue: add M jobs with queue.addBulk in chunks of 1000 while no worker runs.
//   b. e2e: start the worker, time from worker start until all M jobs have completed.
//   c. pickup: with the worker idle, K times sequentially add one job carrying its
//      high-resolution enqueue time; the processor records `now - enqueuedAt`.
//
// Prints exactly one JSON line on stdout; diagnostics go to stderr.
// The queue is named `bench-<random>` and obliterated at the end, so Redis is left clean.

import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Queue, Worker } from 'bullmq';

const BULLMQ_VERSION = createRequire(import.meta.url)('bullmq/package.json').version;
const CHUNK = 1000;
const WATCHDOG_MS = 10 * 60 * 1000;
const CONNECT_TIMEOUT_MS = 10 * 1000;

// Jobs are removed from Redis as soon as they complete (or fail). This is BullMQ's
// recommended setup for high throughput: it keeps Redis memory flat instead of
// accumulating one hash per finished job in the completed/failed sets.
const JOB_OPTS = { removeOnComplete: true, removeOnFail: true };

function usage(msg) {
  if (msg) console.error(`error: ${msg}`);
  console.error(
    'usage: node bench.mjs --concurrency N --jobs M [--redis redis://127.0.0.1:6379] [--pickup-samples K]',
  );
  process.exit(2);
}

function positiveInt(name, raw) {
  const n = Number(raw);
  if (raw === undefined || !Number.isInteger(n) || n < 1) usage(`--${name} must be a positive integer`);
  return n;
}

function parseCli() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        concurrency: { type: 'string' },
        jobs: { type: 'string' },
        redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
        'pickup-samples': { type: 'string', default: '200' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    usage(err.message);
  }
  if (values.help) usage();
  return {
    concurrency: positiveInt('concurrency', values.concurrency),
    jobs: positiveInt('jobs', values.jobs),
    redis: values.redis,
    pickupSamples: positiveInt('pickup-samples', values['pickup-samples']),
  };
}

// Wall-clock milliseconds with sub-millisecond resolution.
const nowMs = () => performance.timeOrigin + performance.now();

// Nearest-rank percentile of an ascending-sorted array.
function percentile(sorted, p) {
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[rank - 1];
}

const round = (x, digits) => Number(x.toFixed(digits));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const { concurrency, jobs, redis, pickupSamples } = parseCli();
  const queueName = `bench-${randomBytes(6).toString('hex')}`;
  const connection = { url: redis };

  const watchdog = setTimeout(() => {
    console.error(`error: benchmark did not finish within ${WATCHDOG_MS / 1000}s`);
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();

  const queue = new Queue(queueName, { connection });
  let queueErrors = 0;
  queue.on('error', (err) => {
    if (queueErrors++ === 0) console.error('queue error:', err?.message ?? err);
  });
  // Fail fast if Redis is unreachable (ioredis would otherwise retry forever).
  let connectTimer;
  await Promise.race([
    queue.waitUntilReady(),
    new Promise((_, reject) => {
      connectTimer = setTimeout(
        () => reject(new Error(`could not connect to ${redis} within ${CONNECT_TIMEOUT_MS / 1000}s`)),
        CONNECT_TIMEOUT_MS,
      );
    }),
  ]).finally(() => clearTimeout(connectTimer));
  let worker;

  // Completion bookkeeping, driven by the worker's 'completed'/'failed' events
  // (emitted after the job has been moved to completed in Redis).
  let e2eDone = 0;
  let onE2eDone;
  let onPickupDone;
  let onFailure;
  const pickupLatencies = [];

  try {
    // a. Enqueue rate, no worker running.
    const enqStart = performance.now();
    for (let base = 0; base < jobs; base += CHUNK) {
      const n = Math.min(CHUNK, jobs - base);
      const batch = new Array(n);
      for (let i = 0; i < n; i++) batch[i] = { name: 'e2e', data: { i: base + i }, opts: JOB_OPTS };
      await queue.addBulk(batch);
    }
    const enqSecs = (performance.now() - enqStart) / 1000;

    // b. End-to-end throughput: worker start -> all M jobs completed.
    const failed = new Promise((_, reject) => {
      onFailure = reject;
    });
    failed.catch(() => {}); // observed via Promise.race below
    const allE2eDone = new Promise((resolve) => {
      onE2eDone = resolve;
    });

    worker = new Worker(
      queueName,
      async (job) => {
        if (job.name === 'pickup') pickupLatencies.push(nowMs() - job.data.enqueuedAt);
        // no-op otherwise; returns nothing
      },
      { connection, concurrency, autorun: false },
    );
    worker.on('error', (err) => console.error('worker error:', err));
    worker.on('failed', (job, err) => onFailure(new Error(`job ${job?.id} (${job?.name}) failed: ${err?.message}`)));
    worker.on('completed', (job) => {
      if (job.name === 'e2e') {
        if (++e2eDone === jobs) onE2eDone(performance.now());
      } else if (job.name === 'pickup') {
        onPickupDone?.();
      }
    });
    // Connect (main + blocking connection) before starting the clock.
    await worker.waitUntilReady();

    const e2eStart = performance.now();
    worker.run().catch((err) => onFailure(err));
    const e2eEnd = await Promise.race([allE2eDone, failed]);
    const e2eSecs = (e2eEnd - e2eStart) / 1000;

    // c. Pickup latency with an idle worker; one job at a time.
    await sleep(200); // let the worker go back to its blocking wait for new jobs
    for (let k = 0; k < pickupSamples; k++) {
      const done = new Promise((resolve) => {
        onPickupDone = resolve;
      });
      await queue.add('pickup', { enqueuedAt: nowMs() }, JOB_OPTS);
      await Promise.race([done, failed]);
    }
    onPickupDone = undefined;
    if (pickupLatencies.length !== pickupSamples) {
      throw new Error(`expected ${pickupSamples} pickup samples, got ${pickupLatencies.length}`);
    }
    pickupLatencies.sort((a, b) => a - b);

    const result = {
      system: 'bullmq',
      version: BULLMQ_VERSION,
      concurrency,
      jobs,
      enqueue_per_sec: round(jobs / enqSecs, 1),
      e2e_per_sec: round(jobs / e2eSecs, 1),
      pickup_p50_ms: round(percentile(pickupLatencies, 0.5), 3),
      pickup_p99_ms: round(percentile(pickupLatencies, 0.99), 3),
      pickup_max_ms: round(pickupLatencies[pickupLatencies.length - 1], 3),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    // Close the worker first so it cannot re-create keys, then remove every key of this queue.
    if (worker) await worker.close();
    try {
      await queue.obliterate({ force: true });
    } finally {
      await queue.close();
    }
  }
}

// On success the process exits on its own once all Redis connections are closed.
main().catch((err) => {
  console.error('error:', err?.stack ?? err);
  process.exit(1);
});
