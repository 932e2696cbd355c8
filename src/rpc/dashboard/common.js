// Shared by the node dashboard and the devnet page: a JSON-RPC WebSocket client that reconnects,
// and small formatters. Plain browser JavaScript, no build step.
'use strict'

window.Grapevine = (() => {
  /** A JSON-RPC 2.0 connection with subscriptions; re-subscribes after every reconnect. */
  class Rpc {
    constructor(url, { onState } = {}) {
      this.url = url
      this.onState = onState ?? (() => {})
      this.nextId = 1
      this.pending = new Map()
      this.wanted = [] // [{ topic, args, listener }]: subscribed again on reconnect
      this.byId = new Map()
      this.early = []
      this.delayMs = 500
      this.closed = false
      this.open()
    }

    open() {
      if (this.closed) return
      this.onState('connecting')
      const socket = new WebSocket(this.url)
      this.socket = socket
      socket.onopen = () => {
        this.delayMs = 500
        this.onState('live')
        this.byId.clear()
        this.early = []
        for (const wanted of this.wanted) this.sendSubscribe(wanted)
      }
      socket.onmessage = (event) => this.onMessage(event.data)
      socket.onclose = () => {
        for (const [, call] of this.pending) call.reject(new Error('disconnected'))
        this.pending.clear()
        if (this.closed) return
        this.onState('offline')
        setTimeout(() => this.open(), this.delayMs)
        this.delayMs = Math.min(10_000, this.delayMs * 2)
      }
    }

    onMessage(text) {
      let message
      try {
        message = JSON.parse(text)
      } catch {
        return
      }
      if (message.method === 'subscription') {
        const wanted = this.byId.get(message.params?.subscription)
        if (wanted !== undefined) wanted.listener(message.params.result)
        // A notification may beat its subscribe answer's promise callback: keep it a moment (bounded).
        else if (this.early.length < 256) this.early.push(message.params)
        return
      }
      const call = this.pending.get(message.id)
      if (call === undefined) return
      this.pending.delete(message.id)
      if (message.error !== undefined) call.reject(new Error(message.error.message))
      else call.resolve(message.result)
    }

    call(method, params = []) {
      if (this.socket.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected'))
      const id = this.nextId++
      return new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject })
        this.socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }))
      })
    }

    subscribe(topic, args, listener) {
      const wanted = { topic, args, listener, id: undefined }
      this.wanted.push(wanted)
      if (this.socket.readyState === WebSocket.OPEN) this.sendSubscribe(wanted)
      return wanted
    }

    async unsubscribe(wanted) {
      this.wanted = this.wanted.filter((item) => item !== wanted)
      if (wanted.id !== undefined) {
        this.byId.delete(wanted.id)
        await this.call('unsubscribe', [wanted.id]).catch(() => undefined)
      }
    }

    sendSubscribe(wanted) {
      // Registered before the answer arrives is impossible (the id comes with it); the node sends
      // the first notification only after the answer, so nothing is lost.
      this.call('subscribe', [wanted.topic, ...wanted.args]).then(
        (id) => {
          wanted.id = id
          if (!this.wanted.includes(wanted)) {
            // Unsubscribed while the answer was on its way.
            void this.call('unsubscribe', [id]).catch(() => undefined)
            return
          }
          this.byId.set(id, wanted)
          const early = this.early
          this.early = []
          for (const item of early) {
            if (item.subscription === id) wanted.listener(item.result)
            else if (this.byId.has(item.subscription) === false) this.early.push(item)
          }
        },
        () => undefined,
      )
    }

    close() {
      this.closed = true
      this.socket.close()
    }
  }

  const short = (hex, n = 8) => (typeof hex === 'string' ? (hex.startsWith('0x') ? hex.slice(2, 2 + n) : hex.slice(-n)) : '—')
  const shortPeer = (id) => (typeof id === 'string' ? `…${id.slice(-6)}` : '—')

  function bytes(n) {
    if (typeof n !== 'number' || !Number.isFinite(n)) return '—'
    if (n < 1024) return `${n} B`
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`
    if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MB`
    return `${(n / 1024 ** 3).toFixed(2)} GB`
  }

  function number(n, digits = 0) {
    if (typeof n !== 'number' || !Number.isFinite(n)) return '—'
    return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
  }

  function duration(ms) {
    if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—'
    if (ms < 1000) return `${Math.round(ms)} ms`
    if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
    if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`
    return `${(ms / 3_600_000).toFixed(1)} h`
  }

  /** A stable colour for a hash: nodes on the same head show the same colour. */
  function hashColour(hex) {
    if (typeof hex !== 'string' || hex.length < 8) return '#666'
    const hue = parseInt(hex.slice(2, 8), 16) % 360
    return `hsl(${hue} 70% 60%)`
  }

  /** Element builder: el('td', { class: 'x' }, 'text', child…). */
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag)
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined || value === null) continue
      if (name === 'style' && typeof value === 'object') Object.assign(node.style, value)
      else node.setAttribute(name, String(value))
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? '')))
    return node
  }

  function wsUrlFor(httpUrl) {
    return httpUrl.replace(/^http/, 'ws').replace(/\/?$/, '/')
  }

  return { Rpc, short, shortPeer, bytes, number, duration, hashColour, el, wsUrlFor }
})()
