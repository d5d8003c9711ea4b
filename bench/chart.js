'use strict'
// The benchmark chart, drawn by Vega-Lite and rendered to SVG in Node (no browser): one panel per
// contender and load with requests/s (left axis) and p99 latency (right axis) over time, failed
// requests as red marks and the reload moments as grey dashed lines.
const vega = require('vega')
const vegaLite = require('vega-lite')

const COLORS = { rps: '#1f77b4', p99: '#ff7f0e', failed: '#d62728', reload: '#999999' }

function panel (result) {
  const { points, reloads } = result.timeline
  const end = Math.max(1, ...points.map((p) => p.t))
  const x = { field: 't', type: 'quantitative', title: 'seconds', scale: { domain: [0, end], nice: false } }
  const axis = (title, color, orient) => ({ title, titleColor: color, orient, grid: false })
  return {
    title: { text: `${result.contender} — ${result.load}: ${result.failed + result.non2xx} failed of ${result.sent}`, anchor: 'start', fontSize: 12 },
    width: 760,
    height: 110,
    layer: [
      { data: { values: reloads.map((t) => ({ t })) }, mark: { type: 'rule', color: COLORS.reload, strokeDash: [3, 3] }, encoding: { x } },
      // A full-height red mark wherever a request failed in that 250 ms slice.
      { data: { values: points.filter((p) => p.failed > 0) }, mark: { type: 'rule', color: COLORS.failed, strokeWidth: 3 }, encoding: { x } },
      { data: { values: points }, mark: { type: 'line', color: COLORS.rps, strokeWidth: 1.2 }, encoding: { x, y: { field: 'rps', type: 'quantitative', axis: axis('requests/s', COLORS.rps, 'left') } } },
      { data: { values: points }, mark: { type: 'line', color: COLORS.p99, strokeWidth: 1.2 }, encoding: { x, y: { field: 'p99', type: 'quantitative', axis: axis('p99 (ms)', COLORS.p99, 'right') } } }
    ],
    resolve: { scale: { y: 'independent' } }
  }
}

/** The whole report as one SVG document. */
async function renderChart (report) {
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    background: 'white',
    title: {
      text: `fastify-hot-reload benchmark (${report.machine.node}, ${report.machine.cpus} CPUs, ${report.when})`,
      subtitle: 'blue: requests/s · orange: p99 latency · red: requests failed · grey dashes: reloads',
      anchor: 'start'
    },
    vconcat: report.results.map(panel),
    config: { font: 'sans-serif', view: { stroke: '#cccccc' } }
  }
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

module.exports = { renderChart }
