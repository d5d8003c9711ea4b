'use strict'
// A dependency-free SVG of the benchmark: one panel per contender and load, requests/s (blue),
// failed requests (red bars) and p99 latency (orange) over time, reload moments as grey lines.
const WIDTH = 900
const PANEL = 120
const MARGIN = { left: 60, right: 60, top: 28, bottom: 22 }

function escape (text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function panel (result, index) {
  const { points, reloads } = result.timeline
  const top = index * (PANEL + MARGIN.top + MARGIN.bottom) + MARGIN.top
  const innerWidth = WIDTH - MARGIN.left - MARGIN.right
  const maxT = Math.max(1, ...points.map((p) => p.t))
  const maxRps = Math.max(1, ...points.map((p) => p.rps))
  const maxP99 = Math.max(1, ...points.map((p) => p.p99))
  const maxFailed = Math.max(1, ...points.map((p) => p.failed))
  const x = (t) => MARGIN.left + (t / maxT) * innerWidth
  const y = (v, max) => top + PANEL - (v / max) * PANEL
  const parts = []
  parts.push(`<text x="${MARGIN.left}" y="${top - 8}" font-size="12" font-weight="bold">${escape(result.contender)} — ${escape(result.load)}: ${result.failed + result.non2xx} failed of ${result.sent}</text>`)
  parts.push(`<rect x="${MARGIN.left}" y="${top}" width="${innerWidth}" height="${PANEL}" fill="none" stroke="#ccc"/>`)
  for (const at of reloads) parts.push(`<line x1="${x(at).toFixed(1)}" x2="${x(at).toFixed(1)}" y1="${top}" y2="${top + PANEL}" stroke="#999" stroke-dasharray="3,3"/>`)
  for (const p of points) {
    if (p.failed > 0) {
      const h = Math.max(2, (p.failed / maxFailed) * PANEL)
      parts.push(`<rect x="${x(p.t).toFixed(1)}" y="${(top + PANEL - h).toFixed(1)}" width="4" height="${h.toFixed(1)}" fill="#d62728"/>`)
    }
  }
  const line = (key, max, color) => `<polyline fill="none" stroke="${color}" stroke-width="1.2" points="${points.map((p) => `${x(p.t).toFixed(1)},${y(p[key], max).toFixed(1)}`).join(' ')}"/>`
  parts.push(line('rps', maxRps, '#1f77b4'))
  parts.push(line('p99', maxP99, '#ff7f0e'))
  parts.push(`<text x="${MARGIN.left - 6}" y="${top + 10}" font-size="10" text-anchor="end" fill="#1f77b4">${maxRps} rps</text>`)
  parts.push(`<text x="${WIDTH - MARGIN.right + 6}" y="${top + 10}" font-size="10" fill="#ff7f0e">p99 ${maxP99} ms</text>`)
  parts.push(`<text x="${WIDTH - MARGIN.right}" y="${top + PANEL + 14}" font-size="10" text-anchor="end">${maxT.toFixed(0)} s</text>`)
  return parts.join('\n')
}

function renderChart (report) {
  const shown = report.results
  const height = shown.length * (PANEL + MARGIN.top + MARGIN.bottom) + 40
  const legend = `<text x="${MARGIN.left}" y="${height - 12}" font-size="11"><tspan fill="#1f77b4">— requests/s</tspan>   <tspan fill="#ff7f0e">— p99 latency</tspan>   <tspan fill="#d62728">▮ failed requests</tspan>   <tspan fill="#999">┆ reload</tspan>   (${escape(report.machine.node)}, ${report.machine.cpus} CPUs, ${escape(report.when)})</text>`
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${shown.map(panel).join('\n')}\n${legend}\n</svg>\n`
}

module.exports = { renderChart }
