/**
 * Hand-written SVG charts (polyline and bar), no dependencies: small, readable files that
 * render on GitHub and in any browser.
 */
export interface Series {
  name: string
  points: ReadonlyArray<readonly [number, number]>
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf']
const W = 640
const H = 360
const M = { left: 60, right: 20, top: 36, bottom: 48 }

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function niceMax(value: number): number {
  if (!(value > 0)) return 1
  const power = Math.pow(10, Math.floor(Math.log10(value)))
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

function frame(title: string, xLabel: string, yLabel: string, xMax: number, yMax: number, body: string, legend: string[]): string {
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const ticks: string[] = []
  for (let i = 0; i <= 5; i++) {
    const x = M.left + (pw * i) / 5
    const y = M.top + ph - (ph * i) / 5
    ticks.push(`<line x1="${x}" y1="${M.top + ph}" x2="${x}" y2="${M.top + ph + 4}" stroke="#333"/><text x="${x}" y="${M.top + ph + 16}" font-size="11" text-anchor="middle">${+((xMax * i) / 5).toPrecision(3)}</text>`)
    ticks.push(`<line x1="${M.left}" y1="${y}" x2="${M.left + pw}" y2="${y}" stroke="#eee"/><text x="${M.left - 6}" y="${y + 4}" font-size="11" text-anchor="end">${+((yMax * i) / 5).toPrecision(3)}</text>`)
  }
  const legendSvg = legend.map((name, i) => `<rect x="${M.left + 10}" y="${M.top + 8 + i * 16}" width="10" height="10" fill="${COLOURS[i % COLOURS.length]}"/><text x="${M.left + 26}" y="${M.top + 17 + i * 16}" font-size="11">${escape(name)}</text>`).join('')
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${W / 2}" y="20" font-size="14" text-anchor="middle">${escape(title)}</text>
${ticks.join('\n')}
<line x1="${M.left}" y1="${M.top + ph}" x2="${M.left + pw}" y2="${M.top + ph}" stroke="#333"/><line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}" stroke="#333"/>
<text x="${M.left + pw / 2}" y="${H - 10}" font-size="12" text-anchor="middle">${escape(xLabel)}</text>
<text x="14" y="${M.top + ph / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${M.top + ph / 2})">${escape(yLabel)}</text>
${body}
${legendSvg}
</svg>
`
}

export function lineChart(title: string, xLabel: string, yLabel: string, series: readonly Series[], yMax?: number): string {
  let xMax = 0
  let yTop = 0
  for (const s of series) for (const [x, y] of s.points) {
    xMax = Math.max(xMax, x)
    yTop = Math.max(yTop, y)
  }
  xMax = niceMax(xMax)
  const top = yMax ?? niceMax(yTop)
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const body = series
    .map((s, i) => {
      const pts = s.points.map(([x, y]) => `${(M.left + (pw * x) / xMax).toFixed(1)},${(M.top + ph - (ph * Math.min(y, top)) / top).toFixed(1)}`).join(' ')
      return `<polyline fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2" points="${pts}"/>`
    })
    .join('\n')
  return frame(title, xLabel, yLabel, xMax, top, body, series.map((s) => s.name))
}

export function barChart(title: string, xLabel: string, yLabel: string, labels: readonly string[], values: readonly number[]): string {
  const top = niceMax(Math.max(0, ...values))
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const width = pw / Math.max(1, values.length)
  const body = values
    .map((v, i) => {
      const h = (ph * v) / top
      const x = M.left + i * width
      return `<rect x="${(x + 1).toFixed(1)}" y="${(M.top + ph - h).toFixed(1)}" width="${Math.max(1, width - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLOURS[0]}"/><text x="${(x + width / 2).toFixed(1)}" y="${M.top + ph + 28}" font-size="10" text-anchor="middle">${escape(labels[i] ?? '')}</text>`
    })
    .join('\n')
  return frame(title, xLabel, yLabel, values.length, top, body, [])
}
