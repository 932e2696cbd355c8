/** A small typed emitter: event name → argument tuple. Listener errors go to `onListenerError`. */
export class TypedEmitter<Events extends { [K in keyof Events]: unknown[] }> {
  /** Bounded by the number of subscribers the code registers (a handful per event). */
  private readonly listeners: { [K in keyof Events]?: Array<(...args: Events[K]) => void> } = {}

  constructor(private readonly onListenerError: (error: unknown) => void = () => {}) {}

  on<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): () => void {
    const list = (this.listeners[event] ??= [])
    list.push(listener)
    return () => {
      const index = list.indexOf(listener)
      if (index >= 0) list.splice(index, 1)
    }
  }

  emit<K extends keyof Events>(event: K, ...args: Events[K]): void {
    const list = this.listeners[event]
    if (list === undefined) return
    for (const listener of [...list]) {
      try {
        listener(...args)
      } catch (error) {
        this.onListenerError(error)
      }
    }
  }
}
