/** Time source injected everywhere time matters, so tests can drive it. Milliseconds since the epoch. */
export type Clock = () => number

export const systemClock: Clock = () => Date.now()
