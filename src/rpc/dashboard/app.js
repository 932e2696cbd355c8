// A node's live dashboard: one WebSocket to the page's own host, subscribed to `stats` (a snapshot
// every second) and `newHeads` (each head as it is adopted). No build step; uPlot draws the charts.
'use strict'
;(() => {
  const { Rpc, short, shortPeer, bytes, number, duration, el } = window.Grapevine
  const $ = (id) => document.getElementById(id)
  const state = { snapshot: null, head: null, lastHeadAt: null, charts: {} }
  window.dashboardState = state

  const rpc = new Rpc(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`, {
    onState: (name) => {
      $('state-dot').className = `dot ${name}`
      $('state-text').textContent = name
    },
  })
  rpc.subscribe('stats', [], (snapshot) => render(snapshot))
  rpc.subscribe('newHeads', [], (head) => {
    state.head = head
    state.lastHeadAt = Date.now()
    renderHead()
    if (state.snapshot !== null) addRecentBlock(head)
  })

  // ------------------------------------------------------------------ charts

  const axisStyle = { stroke: '#8593a3', grid: { stroke: '#1f2a36', width: 1 }, ticks: { stroke: '#243040', width: 1 } }

  function makeChart(target, series, yLabel) {
    const width = Math.max(300, $(target).clientWidth)
    const chart = new uPlot(
      {
        width,
        height: 160,
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (_u, min, max) => [0, Math.max(1, max * 1.15)] } },
        axes: [{ ...axisStyle }, { ...axisStyle, label: yLabel, labelSize: 14, size: 46 }],
        series: [{}, ...series],
      },
      [[], ...series.map(() => [])],
      $(target),
    )
    new ResizeObserver(() => chart.setSize({ width: Math.max(300, $(target).clientWidth), height: 160 })).observe($(target))
    return chart
  }

  state.charts.tx = makeChart(
    'tx-chart',
    [
      { label: 'included (5 s avg)', stroke: '#4cd08a', width: 2, fill: 'rgba(76,208,138,0.12)', points: { show: false } },
      { label: 'received (5 s avg)', stroke: '#6cc4ff', width: 1.5, points: { show: false } },
    ],
    'tx/s',
  )
  state.charts.latency = makeChart(
    'latency-chart',
    [
      { label: 'average', stroke: '#f2b84b', width: 2, spanGaps: true, points: { show: true, size: 4 } },
      { label: 'max', stroke: '#f06d6d', width: 1, dash: [4, 4], spanGaps: true, points: { show: false } },
    ],
    'seconds',
  )

  function movingAverage(values, window) {
    const out = new Array(values.length)
    let sum = 0
    for (let i = 0; i < values.length; i++) {
      sum += values[i]
      if (i >= window) sum -= values[i - window]
      out[i] = sum / Math.min(window, i + 1)
    }
    return out
  }

  function renderCharts(series) {
    const n = series.txIncluded.length
    const xs = Array.from({ length: n }, (_, i) => series.seriesEnd - n + 1 + i)
    state.charts.tx.setData([xs, movingAverage(series.txIncluded, 5), movingAverage(series.txPending, 5)])
    const toSeconds = (values) => values.map((v) => (v === null ? null : v / 1000))
    state.charts.latency.setData([xs, toSeconds(series.latencyAvgMs), toSeconds(series.latencyMaxMs)])
    const included = series.txIncluded.reduce((a, b) => a + b, 0)
    const peak = Math.max(0, ...movingAverage(series.txIncluded, 5))
    $('tx-note').textContent = `${number(included)} included in the last ${Math.round(n / 60)} min · peak ${number(peak, 1)} tx/s`
    $('tx-note').dataset.included = String(included)
    let sum = 0
    let count = 0
    let worst = 0
    for (let i = 0; i < n; i++) {
      if (series.latencyAvgMs[i] === null) continue
      sum += series.latencyAvgMs[i]
      count++
      worst = Math.max(worst, series.latencyMaxMs[i] ?? 0)
    }
    $('latency-note').textContent = count === 0 ? 'no transactions seen pending here yet' : `average ${duration(sum / count)} · worst ${duration(worst)}`
    $('latency-note').dataset.samples = String(count)
  }

  // ------------------------------------------------------------------ cards and tables

  function renderHead() {
    const head = state.head
    if (head === null) return
    $('head-height').textContent = number(head.height)
    $('head-hash').textContent = `${short(head.hash, 10)} · slot ${head.slot}`
  }

  function addRecentBlock(head) {
    const blocks = state.snapshot.recentBlocks
    if (blocks.length > 0 && blocks[0].height >= head.height) return
    blocks.unshift({ height: head.height, hash: head.hash, txCount: head.txCount, proposer: head.proposer, timestamp: head.timestamp, receivedAt: head.receivedAt })
    blocks.length = Math.min(blocks.length, 15)
    renderBlocks(blocks, head.height)
  }

  function renderBlocks(blocks, flashHeight) {
    const body = $('recent-blocks').tBodies[0]
    body.replaceChildren(
      ...(blocks.length === 0
        ? [el('tr', {}, el('td', { class: 'empty', colspan: 5 }, 'no blocks yet'))]
        : blocks.map((block) =>
            el(
              'tr',
              { class: block.height === flashHeight ? 'new' : undefined, 'data-height': block.height, 'data-txcount': block.txCount },
              el('td', { class: 'num' }, number(block.height)),
              el('td', { class: 'mono' }, short(block.hash, 12)),
              el('td', { class: 'num', style: block.txCount > 0 ? { color: '#4cd08a', fontWeight: 600 } : {} }, number(block.txCount)),
              el('td', { class: 'mono' }, short(block.proposer, 10)),
              el('td', { class: 'num' }, duration(Date.now() - block.receivedAt)),
            ),
          )),
    )
  }

  function renderPeers(peers) {
    const body = $('peers').tBodies[0]
    body.replaceChildren(
      ...(peers.length === 0
        ? [el('tr', {}, el('td', { class: 'empty', colspan: 9 }, 'no peers'))]
        : peers
            .slice()
            .sort((a, b) => Number(BigInt(b.stake) - BigInt(a.stake)) || a.peerId.localeCompare(b.peerId))
            .map((peer) =>
              el(
                'tr',
                { 'data-peer': peer.peerId },
                el('td', { class: 'mono', title: `${peer.peerId}\n${peer.addresses.join('\n')}` }, shortPeer(peer.peerId)),
                el('td', {}, el('span', { class: `pill ${peer.direction === 'outbound' ? 'out' : 'in'}` }, peer.direction === 'outbound' ? 'out' : 'in')),
                el('td', { class: 'num' }, number(Number(peer.stake))),
                el('td', { class: 'num', style: peer.score !== null && peer.score < 0 ? { color: '#f06d6d' } : {} }, peer.score === null ? '—' : number(peer.score, 1)),
                el('td', { class: 'mono' }, peer.addressGroup ?? '—'),
                el('td', { class: 'num' }, bytes(peer.bytesIn)),
                el('td', { class: 'num' }, bytes(peer.bytesOut)),
                el('td', { class: 'num' }, peer.rttMs === null ? '—' : `${number(peer.rttMs)} ms`),
                el('td', { class: 'num' }, peer.headHeight === null ? '—' : number(peer.headHeight)),
              ),
            )),
    )
  }

  function renderSync(sync) {
    const phase = sync?.phase ?? 'idle'
    $('sync-phase').textContent = phase
    let progress = phase === 'synced' ? 1 : 0
    let detail = '—'
    if (sync !== null && typeof sync === 'object') {
      if (phase === 'state') {
        progress = sync.stateProgress ?? 0
        detail = `${number(sync.stateEntriesFetched)} / ~${number(sync.stateEntriesEstimate ?? 0)} state entries`
      } else if (phase === 'headers' || phase === 'blocks') {
        const span = Math.max(1, sync.targetHeight - sync.startHeight)
        progress = (sync.currentHeight - sync.startHeight) / span
        detail = `${number(sync.currentHeight)} → ${number(sync.targetHeight)}`
      } else {
        detail = `${number(sync.catchUps ?? 0)} catch-ups · ${number(sync.mempoolTxsFetched ?? 0)} txs repaired`
      }
      if (typeof sync.etaSeconds === 'number' && phase !== 'synced') detail += ` · ETA ${duration(sync.etaSeconds * 1000)}`
    }
    $('sync-detail').textContent = detail
    $('sync-bar').style.width = `${Math.round(Math.max(0, Math.min(1, progress)) * 100)}%`
  }

  function renderWarnings(warnings) {
    $('warnings').replaceChildren(...warnings.map((warning) => el('div', { class: `warning ${warning.code === 'HEAD_STALLED' || warning.code === 'PEERS_BANNED' ? 'bad' : ''}`, 'data-code': warning.code }, `⚠ ${warning.message}`)))
  }

  function render(snapshot) {
    state.snapshot = snapshot
    const node = snapshot.node
    $('node-meta').textContent = [node.chainId, node.peerId === undefined ? 'no networking' : `peer ${shortPeer(node.peerId)}`, node.validator === undefined ? 'full node' : `validator ${short(node.validator, 8)}`].join('  ·  ')
    document.title = `Grapevine · ${number(node.height)} · ${node.peerId === undefined ? node.chainId : shortPeer(node.peerId)}`
    if (state.head === null || node.height >= state.head.height) {
      state.head = { ...(state.head ?? {}), height: node.height, hash: node.headHash, slot: state.head?.slot ?? '—' }
      renderHead()
    }
    $('finalized-height').textContent = number(snapshot.finalizedHeight)
    $('finalized-note').textContent = snapshot.finalizedHeight === 0 ? 'finality not active' : `${number(node.height - snapshot.finalizedHeight)} blocks behind head`
    $('since-block').textContent = snapshot.msSinceLastBlock === null ? '—' : `${duration(snapshot.msSinceLastBlock)} ago`
    const blocks = snapshot.recentBlocks
    if (blocks.length >= 2) $('block-interval').textContent = `every ~${duration((blocks[0].timestamp - blocks[blocks.length - 1].timestamp) / (blocks.length - 1))}`
    const outbound = snapshot.peers.filter((peer) => peer.direction === 'outbound').length
    $('peer-count').textContent = node.peers === undefined ? '—' : number(snapshot.peers.length)
    $('peer-split').textContent = node.peers === undefined ? 'networking off' : `${outbound} out · ${snapshot.peers.length - outbound} in · ${new Set(snapshot.peers.map((peer) => peer.addressGroup)).size} grp`
    $('mempool-size').textContent = number(snapshot.mempool.size)
    $('mempool-bytes').textContent = `${bytes(snapshot.mempool.bytes)} pending`
    const fees = snapshot.mempool.fees
    $('fee-p50').textContent = fees.p50 ?? '—'
    $('fee-levels').textContent = fees.sampled === 0 ? 'mempool empty' : `${fees.min} / ${fees.p50} / ${fees.p90} (max ${fees.max})`
    const gossip = snapshot.gossip
    $('gossip-bytes').textContent = gossip.bytesInPerTx === null ? '—' : bytes(gossip.bytesInPerTx)
    $('gossip-dups').textContent = `${gossip.duplicatesPerTx === null ? '—' : number(gossip.duplicatesPerTx, 2)} dups/tx · ${number(gossip.txsSeen)} txs`
    renderSync(snapshot.sync)
    renderWarnings(snapshot.warnings)
    renderPeers(snapshot.peers)
    renderBlocks(blocks.slice(0, 15), null)
    renderCharts(snapshot.series)
  }

  // The "since last block" card ticks between snapshots.
  setInterval(() => {
    const snapshot = state.snapshot
    if (snapshot === null || snapshot.lastBlockAt === null) return
    $('since-block').textContent = `${duration(Date.now() - Math.max(snapshot.lastBlockAt, state.head?.receivedAt ?? 0))} ago`
  }, 250)
})()
