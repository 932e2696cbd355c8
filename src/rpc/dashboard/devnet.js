// The devnet page: one WebSocket per node (its `stats` and `newHeads`), shown side by side, with a
// graph of who is connected to whom and where a transaction has reached. The node list comes from
// /devnet/nodes.json, served by `grapevine devnet`.
'use strict'
;(async () => {
  const { Rpc, short, shortPeer, number, duration, hashColour, el, wsUrlFor } = window.Grapevine
  const $ = (id) => document.getElementById(id)
  const nodes = await (await fetch('/devnet/nodes.json')).json()
  const view = nodes.map((info) => ({ info, snapshot: null, head: null, rpc: null, tx: null, txSub: null, lastTxid: null, online: 'connecting' }))
  const tracked = { txid: null, manual: false }
  window.devnetState = { view, tracked }
  $('devnet-meta').textContent = `${nodes.length} nodes`

  for (const node of view) {
    node.rpc = new Rpc(wsUrlFor(node.info.rpc), {
      onState: (name) => {
        node.online = name
        renderState()
      },
    })
    node.rpc.subscribe('stats', [], (snapshot) => {
      node.snapshot = snapshot
      // Follow the newest transaction: one a node reports for the first time.
      const fresh = snapshot.lastTxid !== null && snapshot.lastTxid !== node.lastTxid
      node.lastTxid = snapshot.lastTxid
      if (fresh && !tracked.manual && snapshot.lastTxid !== tracked.txid) track(snapshot.lastTxid, false)
      scheduleRender()
    })
    node.rpc.subscribe('newHeads', [], (head) => {
      node.head = head
      scheduleRender()
    })
  }

  function track(txid, manual) {
    tracked.txid = txid
    tracked.manual = manual
    $('txid').value = txid
    for (const node of view) {
      node.tx = null
      if (node.txSub !== null) void node.rpc.unsubscribe(node.txSub)
      node.txSub = node.rpc.subscribe('txStatus', [txid], (status) => {
        node.tx = status
        scheduleRender()
      })
    }
    scheduleRender()
  }

  $('txid').addEventListener('change', () => {
    const value = $('txid').value.trim()
    if (/^0x[0-9a-fA-F]{64}$/.test(value)) track(value.toLowerCase(), true)
    else if (value === '') tracked.manual = false
  })

  let pending = false
  function scheduleRender() {
    if (pending) return
    pending = true
    requestAnimationFrame(() => {
      pending = false
      render()
    })
  }

  function renderState() {
    const live = view.filter((node) => node.online === 'live').length
    $('state-dot').className = `dot ${live === view.length ? 'live' : live === 0 ? 'offline' : 'connecting'}`
    $('state-text').textContent = `${live}/${view.length} nodes live`
  }

  function headOf(node) {
    const fromStats = node.snapshot === null ? null : { height: node.snapshot.node.height, hash: node.snapshot.node.headHash }
    if (node.head !== null && (fromStats === null || node.head.height >= fromStats.height)) return { height: node.head.height, hash: node.head.hash }
    return fromStats
  }

  function render() {
    renderState()
    const heads = view.map(headOf)
    const best = Math.max(0, ...heads.map((head) => head?.height ?? 0))
    $('nodes').replaceChildren(
      ...view.map((node, i) => {
        const head = heads[i]
        const snapshot = node.snapshot
        const colour = head === null ? '#555' : hashColour(head.hash)
        return el(
          'div',
          { class: 'node-card', style: { borderTopColor: colour }, 'data-node': node.info.name, 'data-height': head?.height ?? '' },
          el('h3', {}, node.info.name, el('a', { href: node.info.rpc, target: '_blank' }, 'dashboard ↗')),
          el('div', { class: 'value' }, head === null ? '—' : number(head.height)),
          el('div', { class: 'sub' }, head === null ? 'starting' : `${short(head.hash, 10)}${head.height < best ? `  (${best - head.height} behind)` : ''}`),
          el('div', { class: 'sub' }, snapshot === null ? '' : `${snapshot.peers.length} peers · mempool ${number(snapshot.mempool.size)}`),
          el('div', { class: 'sub' }, snapshot === null || snapshot.msSinceLastBlock === null ? '' : `last block ${duration(snapshot.msSinceLastBlock)} ago`),
        )
      }),
    )
    const warnings = []
    for (const node of view) for (const warning of node.snapshot?.warnings ?? []) warnings.push(`${node.info.name}: ${warning.message}`)
    const hashesAtBest = new Set(heads.filter((head) => head !== null && head.height === best).map((head) => head.hash))
    if (hashesAtBest.size > 1) warnings.push(`${hashesAtBest.size} different blocks at height ${best}: a fork`)
    $('warnings').replaceChildren(...warnings.map((text) => el('div', { class: 'warning' }, `⚠ ${text}`)))
    renderGraph(heads)
    renderTx()
  }

  function renderGraph(heads) {
    const svg = $('graph')
    const width = svg.clientWidth || 600
    const height = svg.clientHeight || 380
    const cx = width / 2
    const cy = height / 2
    const radius = Math.min(width, height) / 2 - 46
    const ns = 'http://www.w3.org/2000/svg'
    const make = (tag, attributes) => {
      const node = document.createElementNS(ns, tag)
      for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value))
      return node
    }
    const positions = new Map()
    view.forEach((node, i) => {
      const angle = (2 * Math.PI * i) / view.length - Math.PI / 2
      const peerId = node.snapshot?.node.peerId
      if (peerId !== undefined) positions.set(peerId, { x: cx + radius * Math.cos(angle), y: cy + radius * Math.sin(angle), index: i })
    })
    const children = []
    const defs = make('defs', {})
    const marker = make('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 22, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' })
    marker.append(make('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#5d7a96' }))
    defs.append(marker)
    children.push(defs)
    let edges = 0
    for (const node of view) {
      const from = positions.get(node.snapshot?.node.peerId)
      if (from === undefined) continue
      for (const peer of node.snapshot.peers) {
        if (peer.direction !== 'outbound') continue
        const to = positions.get(peer.peerId)
        if (to === undefined) continue
        children.push(make('line', { x1: from.x, y1: from.y, x2: to.x, y2: to.y, 'marker-end': 'url(#arrow)' }))
        edges++
      }
    }
    view.forEach((node, i) => {
      const at = positions.get(node.snapshot?.node.peerId)
      if (at === undefined) return
      const status = node.tx?.status
      const ring = status === 'included' || status === 'finalized' ? '#4cd08a' : status === 'pending' ? '#f2b84b' : status === 'dropped' ? '#f06d6d' : '#2a3542'
      children.push(make('circle', { cx: at.x, cy: at.y, r: 17, fill: heads[i] === null ? '#333' : hashColour(heads[i].hash), stroke: ring, 'stroke-width': 4, 'data-node': node.info.name }))
      const label = make('text', { x: at.x, y: at.y + (at.y > cy ? 36 : -26), 'text-anchor': 'middle' })
      label.textContent = `${node.info.name} · ${heads[i] === null ? '—' : heads[i].height}`
      children.push(label)
    })
    const caption = make('text', { x: 8, y: height - 8 })
    caption.textContent = `${edges} connections`
    children.push(caption)
    svg.replaceChildren(...children)
    svg.dataset.edges = String(edges)
  }

  function renderTx() {
    const body = $('tx-table').tBodies[0]
    if (tracked.txid === null) {
      body.replaceChildren(el('tr', {}, el('td', { class: 'empty', colspan: 4 }, 'no transaction yet: send one, or paste a txid above')))
      return
    }
    body.replaceChildren(
      ...view.map((node) => {
        const status = node.tx?.status ?? 'unknown'
        return el(
          'tr',
          { 'data-node': node.info.name, 'data-status': status },
          el('td', {}, node.info.name),
          el('td', { class: `tx-status status-${status}` }, status === 'dropped' ? `dropped (${node.tx.reason})` : status),
          el('td', { class: 'num' }, node.tx?.height === undefined ? '—' : number(node.tx.height)),
          el('td', { class: 'mono' }, node.tx?.blockHash === undefined ? '—' : short(node.tx.blockHash, 12)),
        )
      }),
    )
  }

  renderState()
  render()
  setInterval(scheduleRender, 1000)
})()
