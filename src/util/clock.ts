/**
 * Time, injected everywhere time matters (docs/architecture.md, "Time"). The protocol core
 * (src/gossip, src/sync, src/peers) reads time only through a `Clock` and schedules work only
 * through `Timers`: the node passes the system's, the virtual network (src/sim) passes its event
 * queue's, so the same engines run on wall time and on virtual time.
 */

/** Milliseconds since the epoch (virtual time in the simulator). */
export type Clock = () => number

export const systemClock: Clock = () => Date.now()

/** A scheduled callback; `cancel()` is safe to call twice or after it ran. */
export interface TimerHandle {
  cancel(): void
}

/** Schedules callbacks on the injected time line. */
export interface Timers {
  /** Runs `callback` once, `delayMs` from now (0: after the current turn). */
  schedule(delayMs: number, callback: () => void): TimerHandle
}

/** Real timers; unref'd so a forgotten timer never keeps a process alive. */
export const systemTimers: Timers = {
  schedule(delayMs, callback) {
    if (delayMs <= 0) {
      const immediate = setImmediate(callback)
      return { cancel: () => clearImmediate(immediate) }
    }
    const timer = setTimeout(callback, delayMs)
    timer.unref?.()
    return { cancel: () => clearTimeout(timer) }
  },
}

/** Resolves after `delayMs` on `timers`, or rejects when `signal` aborts first. */
export function sleep(timers: Timers, delayMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(new Error('aborted'))
      return
    }
    const onAbort = () => {
      handle.cancel()
      reject(new Error('aborted'))
    }
    const handle = timers.schedule(delayMs, () => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    })
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Time plus timers plus randomness: what a sans-IO engine is handed. */
export interface Runtime {
  clock: Clock
  timers: Timers
  /** Uniform in [0, 1); seeded in tests and the simulator. */
  random: () => number
}

export const systemRuntime: Runtime = { clock: systemClock, timers: systemTimers, random: Math.random }
